"""Commands on what usage will be: `forecast` and `spikes`, as of the pipeline clock."""

from __future__ import annotations

import argparse

import sqlalchemy as sa

from usage_billing import forecasting, periods, spikes
from usage_billing.cli.common import UsageError, database, partition, print_json

_KNOWN_CUSTOMER = sa.text("""
SELECT EXISTS (SELECT 1 FROM raw_metrics WHERE customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM customers WHERE customer_id = :customer_id)
""")


def _customers(engine: sa.Engine, customer: str | None) -> list[str] | None:
    """`[customer]` when it is a customer the store knows; None for every customer."""
    if customer is None:
        return None
    with engine.connect() as conn:
        if not conn.execute(_KNOWN_CUSTOMER, {"customer_id": customer}).scalar():
            raise UsageError(f"unknown customer {customer!r}: no raw metrics and not registered")
    return [customer]


def cmd_forecast(args: argparse.Namespace) -> int:
    engine = database()
    month = partition(args.month)
    found = forecasting.forecast_month(
        engine, month, periods.now(), _customers(engine, args.customer)
    )
    if args.json:
        print_json([f.as_json() for f in found])
        return 0
    print(f"forecast of {month} as of {periods.now().isoformat()} (80 % interval)")
    print(
        f"{'customer_id':<16} {'billable_metric':<34} {'month_to_date':>18} "
        f"{'projected':>18} {'low':>18} {'high':>18}"
    )
    for f in found:
        print(
            f"{f.customer_id:<16} {f.billable_metric:<34} {f.month_to_date!s:>18} "
            f"{f.projected!s:>18} {f.low!s:>18} {f.high!s:>18}"
        )
    return 0


def cmd_spikes(args: argparse.Namespace) -> int:
    engine = database()
    month = partition(args.month)
    found = spikes.month_spikes(engine, month, periods.now(), _customers(engine, args.customer))
    if args.json:
        print_json([s.as_json() for s in found])
        return 0
    print(f"usage spikes in {month} as of {periods.now().isoformat()}")
    for s in found:
        print(spikes.describe(s))
    if not found:
        print("none")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `usage-billing` parser."""
    for name, run, summary in (
        (
            "forecast",
            cmd_forecast,
            "projected month-end usage per customer and metric, 80 % interval",
        ),
        ("spikes", cmd_spikes, "days with anomalously high usage, the day under way included"),
    ):
        command = commands.add_parser(name, help=summary)
        command.add_argument("--month", required=True)
        command.add_argument("--customer", help="one customer only")
        command.add_argument("--json", action="store_true")
        command.set_defaults(run=run)
