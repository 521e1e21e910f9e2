"""Commands on money: `invoice` (what will my bill be) and `commits` (will I exceed my commit)."""

from __future__ import annotations

import argparse
import datetime as dt

import sqlalchemy as sa

from usage_billing import contracts, invoices, periods, pricing, projections
from usage_billing.cli.common import UsageError, database, partition, print_json
from usage_billing.reporting import decimal_text


def unknown_customer(conn: sa.Connection, customer_id: str) -> bool:
    """No usage, no registration, no contract."""
    if invoices.customer_known(conn, customer_id):
        return False
    return customer_id not in {c.customer_id for c in contracts.load_contracts()}


def month_invoices(
    conn: sa.Connection, card: pricing.RateCard, month: str, customer_id: str | None
) -> list[invoices.Invoice]:
    """The month's invoices priced now with the rate card: every customer's, or one customer's
    (an empty invoice when it is known but has no usage in the month)."""
    customers = None if customer_id is None else [customer_id]
    try:
        found = invoices.priced_invoices(conn, card, month, customers)
    except pricing.PricingError as error:
        raise UsageError(f"cannot price {month}: {error}") from None
    if customer_id is not None and not found:
        if unknown_customer(conn, customer_id):
            raise UsageError(
                f"unknown customer {customer_id!r}: no usage, registration or contract"
            )
        return [invoices.Invoice(customer_id, month, ())]
    return found


def _status(month: str, now: dt.datetime) -> str:
    if invoices.is_final(month, now):
        return "final"
    final_on = periods.month_bounds(month)[1] + invoices.restatement_horizon()
    so_far = "month to date, " if now < periods.month_bounds(month)[1] else ""
    return f"preview ({so_far}final from {final_on:%Y-%m-%d}, past the restatement horizons)"


def render_invoices(
    month: str,
    currency: str,
    found: list[invoices.Invoice],
    now: dt.datetime,
    forecast: projections.Forecast = projections.no_forecast,
) -> str:
    lines = [
        f"Invoices for {month} in {currency} as of {now:%Y-%m-%d %H:%M} UTC: {_status(month, now)}",
        f"{'customer_id':<20} {'billable_metric':<34} {'quantity':>20} {'amount':>14}",
    ]
    for invoice in found:
        customer = invoice.customer_id
        for item in invoice.line_items:
            lines.append(
                f"{customer:<20} {item.billable_metric:<34} "
                f"{decimal_text(item.quantity):>20} {pricing.money(item.amount):>14}"
            )
            customer = ""
        lines.append(f"{customer:<20} {'total':<34} {'':>20} {pricing.money(invoice.total):>14}")
        shape = invoices.to_json(invoice, now, forecast)
        if shape.get("projected_total"):
            bounds = (shape["projected_low"], shape["projected_high"])
            range_text = f"  80 % range {bounds[0]} to {bounds[1]}" if None not in bounds else ""
            lines.append(
                f"{'':<20} {'projected total':<34} {'':>20} {shape['projected_total']:>14}"
                f"{range_text}"
            )
    return "\n".join(lines)


def cmd_invoice(args: argparse.Namespace) -> int:
    month = partition(args.month)
    now = periods.now()
    card = pricing.load_rate_card()
    engine = database()
    with engine.connect() as conn:
        found = month_invoices(conn, card, month, args.customer)
        # One read of the collectors as of now, for the customers shown (one with --customer).
        customers = None if args.customer is None else [args.customer]
        forecast = projections.month_forecast(engine, card, customers)
        if args.json:
            print_json([invoices.to_json(invoice, now, forecast) for invoice in found])
        else:
            print(render_invoices(month, card.currency, found, now, forecast))
    return 0


def commit_statuses() -> list[contracts.CommitStatus]:
    """Every commit of the contracts file burned down from the stored invoice totals."""
    commits = contracts.load_contracts()
    card = pricing.load_rate_card()
    engine = database()
    forecast = projections.month_forecast(engine, card, {c.customer_id for c in commits})
    with engine.connect() as conn:
        return contracts.commit_statuses(conn, commits, periods.now(), forecast)


def render_commits(statuses: list[contracts.CommitStatus]) -> str:
    header = (
        f"{'customer_id':<20} {'term':<22} {'commit':>12} {'consumed':>12} {'remaining':>12} "
        f"{'projected':>12} {'runs out':>10}  will exceed"
    )
    lines = [header]
    for status in statuses:
        shown = status.to_json()
        term = f"{shown['starts_on']}..{shown['ends_before']}"
        lines.append(
            f"{shown['customer_id']:<20} {term:<22} {shown['commit_amount']:>12} "
            f"{shown['consumed']:>12} {shown['remaining']:>12} "
            f"{shown['projected_consumed_by_end']:>12} "
            f"{shown['projected_exhaustion_date'] or '-':>10}  "
            f"{'YES' if status.will_exceed else 'no'}"
        )
    return "\n".join(lines)


def cmd_commits(args: argparse.Namespace) -> int:
    statuses = commit_statuses()
    if args.json:
        print_json([status.to_json() for status in statuses])
    else:
        print(render_commits(statuses))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `usage-billing` parser."""
    invoice = commands.add_parser(
        "invoice", help="a month's invoices priced with the rate card (USAGE_RATE_CARD)"
    )
    invoice.add_argument("--month", required=True)
    invoice.add_argument("--customer", help="one customer's invoice")
    invoice.add_argument("--json", action="store_true")
    invoice.set_defaults(run=cmd_invoice)

    commits = commands.add_parser(
        "commits", help="commits burned down and projected to their end (USAGE_CONTRACTS)"
    )
    commits.add_argument("--json", action="store_true")
    commits.set_defaults(run=cmd_commits)
