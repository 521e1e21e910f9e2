"""Invoices: a month's usage per customer priced with the rate card, inside PostgreSQL.

A line item is one (customer, billable metric) of a month: the quantity is the month's aggregated
usage (exactly what `usage-billing usage` prints), the amount is the rate card's exact price of it
rounded to cents; the total is the sum of the rounded lines. The `priced_usage` assets persist the
same figures (`invoice_line_items`, `invoice_totals`) after the month is reported, and their checks
prove that every invoiced quantity is what the billing API acknowledged; commits burn down those
stored totals.

An invoice is *final* once its month is over and past the longest restatement horizon any collector
declares; until then late data (a fraud chargeback, a late handoff) may still change it.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from usage_billing import periods, sql
from usage_billing.collectors import COLLECTOR_WORK_MEM, collectors
from usage_billing.config import ConfigurationError
from usage_billing.pricing import EXACT, PricingError, RateCard, money, negative_quantity
from usage_billing.projections import Forecast, no_forecast
from usage_billing.reporting import decimal_text

CENTS_ZERO = Decimal("0.00")
_KNOWN_CUSTOMER = sa.text("""
SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM aggregated_usage WHERE customer_id = :customer_id)
""")
_DELETE_LINE_ITEMS = sa.text("DELETE FROM invoice_line_items WHERE month = :month")
_DELETE_TOTALS = sa.text("DELETE FROM invoice_totals WHERE month = :month")
# A total is the sum of its rounded line items, nothing else.
_INSERT_TOTALS = sa.text("""
INSERT INTO invoice_totals (month, customer_id, total, line_items, priced_at)
SELECT month, customer_id, sum(amount), count(*), max(priced_at)
FROM invoice_line_items
WHERE month = :month
GROUP BY month, customer_id
""")
# Stored totals of some customers over months first..last (`YYYY-MM` sorts like the months).
_STORED_TOTALS = sa.text("""
SELECT customer_id, month, total
FROM invoice_totals
WHERE month >= :first AND month <= :last AND customer_id = ANY(CAST(:customers AS text[]))
""")
_MONTH_TOTALS = sa.text("SELECT customer_id, total FROM invoice_totals WHERE month = :month")
_PRICED_AT = sa.text("SELECT max(priced_at) FROM invoice_totals WHERE month = :month")
_TOTALS_SUMMARY = sa.text("""
SELECT count(*) AS customers, coalesce(sum(total), 0) AS total
FROM invoice_totals WHERE month = :month
""")


@dataclass(frozen=True)
class UsageRow:
    """A month's usage of one customer and billable metric."""

    month: str
    customer_id: str
    billable_metric: str
    quantity: Decimal


@dataclass(frozen=True)
class LineItem:
    billable_metric: str
    quantity: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Invoice:
    """One customer's month: its line items and their total."""

    customer_id: str
    month: str
    line_items: tuple[LineItem, ...]

    @property
    def total(self) -> Decimal:
        """The sum of the rounded line items (already cents: the sum is exact)."""
        return functools.reduce(EXACT.add, (item.amount for item in self.line_items), CENTS_ZERO)


@dataclass(frozen=True)
class PricedUsage:
    """Invoices, and the usage the rate card has no price for (an error wherever it shows)."""

    invoices: list[Invoice]
    unpriced: list[UsageRow]


def _pricing_params(
    card: RateCard, month: str, customers: Sequence[str] | None = None
) -> dict[str, Any]:
    start, end = periods.month_bounds(month)
    customers = None if customers is None else list(customers)
    return {"period_start": start, "period_end": end, "customers": customers, **card.tier_table()}


def _enough_memory(conn: sa.Connection) -> None:
    # One hash aggregate over the month's daily rows; the default 4 MB would spill it to disk.
    conn.exec_driver_sql(f"SET LOCAL work_mem = '{COLLECTOR_WORK_MEM}'")


def invoices(
    conn: sa.Connection, card: RateCard, month: str, customers: Sequence[str] | None = None
) -> PricedUsage:
    """The month's invoices (every customer's, or some customers'), priced now from its
    aggregated usage by `sql/priced_month.sql`. PricingError for a negative month."""
    _enough_memory(conn)
    rows = sql.execute(conn, "priced_month.sql", **_pricing_params(card, month, customers))
    found, unpriced = [], []
    for customer_id, group in itertools.groupby(rows, key=lambda row: row.customer_id):
        items = []
        for row in group:
            if row.quantity < 0:
                error = negative_quantity(row.billable_metric, row.quantity)
                raise PricingError(f"{customer_id}: {error}")
            if row.amount is None:
                unpriced.append(UsageRow(month, customer_id, row.billable_metric, row.quantity))
            else:
                items.append(LineItem(row.billable_metric, row.quantity, row.amount))
        found.append(Invoice(customer_id, month, tuple(items)))
    return PricedUsage(found, unpriced)


def priced_invoices(
    conn: sa.Connection, card: RateCard, month: str, customers: Sequence[str] | None = None
) -> list[Invoice]:
    """`invoices`, refusing usage the card has no price for: ConfigurationError naming the card,
    the metric, the month and a customer."""
    priced = invoices(conn, card, month, customers)
    if priced.unpriced:
        row = priced.unpriced[0]
        raise ConfigurationError(
            f"rate card {card.source}: {row.billable_metric}: has usage in {row.month} "
            f"({row.customer_id}) but no price"
        )
    return priced.invoices


def stored_totals(
    conn: sa.Connection, customers: Iterable[str], first: str, last: str
) -> dict[str, dict[str, Decimal]]:
    """The totals `invoice_totals` holds per customer and month, months first..last."""
    params = {"first": first, "last": last, "customers": sorted(set(customers))}
    totals: dict[str, dict[str, Decimal]] = {}
    for row in conn.execute(_STORED_TOTALS, params):
        totals.setdefault(row.customer_id, {})[row.month] = row.total
    return totals


def month_totals(conn: sa.Connection, month: str) -> dict[str, Decimal]:
    """Every customer's stored total of the month (`invoice_totals`)."""
    return dict(conn.execute(_MONTH_TOTALS, {"month": month}).tuples().all())


def priced_at(conn: sa.Connection, month: str) -> dt.datetime | None:
    """When the month's totals were last priced (the pipeline clock of that run)."""
    return conn.execute(_PRICED_AT, {"month": month}).scalar()


def customer_known(conn: sa.Connection, customer_id: str) -> bool:
    """The customer is registered or has usage in some month."""
    return bool(conn.execute(_KNOWN_CUSTOMER, {"customer_id": customer_id}).scalar())


def restatement_horizon() -> dt.timedelta:
    """The longest time after a month that any collector says its usage may still change."""
    return max(c.restatement_horizon for c in collectors().values())


def is_final(month: str, now: dt.datetime) -> bool:
    """The month is over and past every collector's restatement horizon."""
    return now >= periods.month_bounds(month)[1] + restatement_horizon()


# --- output --------------------------------------------------------------------------------


def to_json(invoice: Invoice, now: dt.datetime, forecast: Forecast = no_forecast) -> dict[str, Any]:
    """The `invoice --json` shape; a month not over yet also carries its projection (nulls when
    the forecast has none)."""
    shape: dict[str, Any] = {
        "customer_id": invoice.customer_id,
        "month": invoice.month,
        "line_items": [
            {
                "billable_metric": item.billable_metric,
                "quantity": decimal_text(item.quantity),
                "amount": money(item.amount),
            }
            for item in invoice.line_items
        ],
        "total": money(invoice.total),
        "final": is_final(invoice.month, now),
    }
    if now < periods.month_bounds(invoice.month)[1]:
        projection = forecast(invoice.customer_id, invoice.month, invoice.total, now)
        shape["projected_total"] = money(projection.total) if projection else None
        for bound in ("low", "high"):
            value = getattr(projection, bound, None)
            shape[f"projected_{bound}"] = None if value is None else money(value)
    return shape


# --- persisted by the priced_usage assets ---------------------------------------------------


@dataclass(frozen=True)
class LineItemsSummary:
    customers: int
    line_items: int
    unpriced: int
    amount_by_metric: dict[str, Decimal]


@functools.cache
def _replace_statement() -> sa.TextClause:
    """sql/invoice_line_items_insert.sql around sql/priced_month.sql."""
    wrapper = sql.read("invoice_line_items_insert.sql")
    return sa.text(wrapper.replace("{priced_month_sql}", sql.read("priced_month.sql")))


def replace_line_items(
    conn: sa.Connection, month: str, card: RateCard, as_of: dt.datetime
) -> LineItemsSummary:
    """Re-price the month from aggregated usage and replace its line items inside PostgreSQL, in
    the caller's transaction. Usage without a price is left out and counted (the
    `every_metric_priced` check fails on it); a negative month raises PricingError."""
    _enough_memory(conn)
    conn.execute(_DELETE_LINE_ITEMS, {"month": month})
    params = {
        **_pricing_params(card, month),
        "month": month,
        "rate_card_sha256": card.sha256,
        "priced_at": as_of,
    }
    overall, *by_metric = conn.execute(_replace_statement(), params).all()
    for row in by_metric:
        if row.a_negative_quantity is not None:
            raise negative_quantity(row.billable_metric, row.a_negative_quantity)
    return LineItemsSummary(
        customers=overall.customers,
        line_items=overall.line_items,
        unpriced=overall.unpriced,
        amount_by_metric={row.billable_metric: row.amount for row in by_metric if row.line_items},
    )


def replace_totals(conn: sa.Connection, month: str) -> tuple[int, Decimal]:
    """Replace the month's totals with the sums of its line items; (customers, grand total)."""
    conn.execute(_DELETE_TOTALS, {"month": month})
    conn.execute(_INSERT_TOTALS, {"month": month})
    row = conn.execute(_TOTALS_SUMMARY, {"month": month}).one()
    return row.customers, row.total
