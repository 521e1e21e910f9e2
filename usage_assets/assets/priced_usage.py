"""Priced usage: the month's invoices and the commits they burn down, after the month is reported.

`invoice_line_items` sits downstream of `reported_usage`, so in a month's run it prices exactly the
usage the billing API has just acknowledged, and its check `invoiced_equals_acknowledged` can hold
it to that. The rate card and the contracts are read at every run (`USAGE_RATE_CARD`,
`USAGE_CONTRACTS`), so an edited file takes effect at the next run, or fails it with one line.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg
import sqlalchemy as sa

from usage_assets.assets.reported_usage import reported_usage
from usage_assets.checks import SHOWN, _problems, result
from usage_assets.metadata import markdown_table
from usage_assets.partitions import monthly_partitions
from usage_billing import contracts, invoices, periods, pricing, projections, sql
from usage_billing.collectors import COLLECTOR_WORK_MEM
from usage_billing.config import ConfigurationError
from usage_billing.resources import WarehouseResource

GROUP = "billing"
T = TypeVar("T")

# Months the priced_usage tables hold (what checks look at outside a partition's run).
_PRICED_MONTHS = sa.text("""
SELECT month FROM invoice_line_items UNION SELECT month FROM invoice_totals ORDER BY 1
""")


def configured(load: Callable[[], T]) -> T:
    """The rate card or the contracts; a file that cannot work fails the run without retries."""
    try:
        return load()
    except (ConfigurationError, pricing.PricingError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


@dg.asset(
    group_name=GROUP,
    partitions_def=monthly_partitions,
    deps=[reported_usage],
    kinds={"postgres"},
    description=(
        "The month's invoice line items: per customer and billable metric, quantity = the "
        "month's aggregated usage and amount = quantity x the rate card's price, computed "
        "exactly and rounded to cents (ROUND_HALF_UP) once. Priced after the month is reported, "
        "so every invoiced quantity is one the billing API acknowledged."
    ),
)
def invoice_line_items(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    card = configured(pricing.load_rate_card)
    as_of = periods.now()
    with warehouse.get_engine().begin() as conn:
        summary = configured(
            lambda: invoices.replace_line_items(conn, context.partition_key, card, as_of)
        )
    return dg.MaterializeResult(
        metadata={
            "customers": summary.customers,
            "line_items": summary.line_items,
            "amount_by_metric": dg.MetadataValue.json(
                {metric: pricing.money(total) for metric, total in summary.amount_by_metric.items()}
            ),
            "unpriced_count": summary.unpriced,
            "currency": card.currency,
            "rate_card": card.source,
            "rate_card_sha256": card.sha256,
            "as_of": as_of.isoformat(),
        }
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=monthly_partitions,
    deps=[invoice_line_items],
    kinds={"postgres", "sql"},
    description="The month's total per customer: the sum of its rounded line items.",
)
def invoice_totals(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with warehouse.get_engine().begin() as conn:
        customers, total = invoices.replace_totals(conn, context.partition_key)
    return dg.MaterializeResult(
        metadata={"customers": customers, "total": dg.MetadataValue.text(pricing.money(total))}
    )


@dg.asset(
    group_name=GROUP,
    deps=[invoice_totals],
    kinds={"postgres"},
    description=(
        "Every commit in the contracts file burned down as of now: consumed (the stored invoice "
        "totals of its months so far), remaining, and the projection to its end from the usage "
        "forecast (the current month's forecast path, later months at the expected daily usage, "
        "priced; the straight line where there is no forecast), with the customer's spending "
        "pace. Opens one incident per commit projected to run out before its end, burning at "
        "twice its usual pace, or run out; the deliver_alerts sensor posts them."
    ),
)
def commit_burndown(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    commits = configured(contracts.load_contracts)
    card = configured(pricing.load_rate_card)
    now = periods.now()
    engine = warehouse.get_engine()
    forecast = projections.month_forecast(engine, card, {c.customer_id for c in commits})
    with engine.begin() as conn:
        statuses = contracts.commit_statuses(conn, commits, now, forecast)
        contracts.replace_burndown(conn, statuses)
    due = contracts.record_alerts(engine, statuses)
    for incident in due:
        context.log.warning(f"alert due (the deliver_alerts sensor sends it): {incident}")
    return dg.MaterializeResult(metadata=_burndown_metadata(statuses, due, card.currency, now))


def _burndown_metadata(
    statuses: list[contracts.CommitStatus], due: list[str], currency: str, now: dt.datetime
) -> dict[str, Any]:
    """Counts, and the commits at risk first (projected to run out soonest) as a table."""
    at_risk = sorted(
        (s for s in statuses if s.active),
        key=lambda s: (s.projected_exhaustion_date or dt.date.max, s.commit.customer_id),
    )
    rows = [
        [
            s.commit.customer_id,
            f"{s.commit.starts_on} to {s.commit.ends_before}",
            pricing.money(s.commit.amount),
            pricing.money(s.consumed),
            pricing.money(s.projected_consumed_by_end),
            str(s.projected_exhaustion_date or "-"),
            f"{s.pace.pace_ratio:.1f}x" if s.pace else "-",
        ]
        for s in at_risk[:SHOWN]
    ]
    header = [
        "customer", "term", f"commit ({currency})", "consumed", "projected by end",
        "runs out on", "pace vs usual",
    ]  # fmt: skip
    return {
        "commits": len(statuses),
        "will_exceed": sum(s.will_exceed for s in statuses),
        "burning": sum(bool(s.pace and s.pace.burning) for s in statuses),
        "exhausted": sum(s.exhausted for s in statuses),
        "active_commits": dg.MetadataValue.md(markdown_table(header, rows)),
        "alerts_due": dg.MetadataValue.json(due[:SHOWN]),
        "will_exceed_commits": dg.MetadataValue.json(
            [s.to_json() for s in statuses if s.will_exceed][:SHOWN]
        ),
        "as_of": now.isoformat(),
    }


def _sql_check(
    name: str, context: dg.AssetCheckExecutionContext, conn: sa.Connection
) -> list[dict[str, Any]]:
    """The findings of `sql/<name>` for the partition's month inside its run, else for every
    priced month."""
    if context.has_partition_key:
        months = [context.partition_key]
    else:
        months = list(conn.execute(_PRICED_MONTHS).scalars())
    # Hash joins and aggregates over a month of daily rows: the default 4 MB would spill them.
    conn.exec_driver_sql(f"SET LOCAL work_mem = '{COLLECTOR_WORK_MEM}'")
    findings = []
    for month in months:
        start, end = periods.month_bounds(month)
        rows = sql.execute(conn, name, month=month, period_start=start, period_end=end)
        findings += _problems(rows)
    return findings


def build_sql_check(
    asset: dg.AssetsDefinition, name: str, findings: str, description: str
) -> dg.AssetChecksDefinition:
    """A blocking check that fails when `sql/check_<name>.sql` finds anything (as `findings`)."""

    @dg.asset_check(asset=asset, name=name, blocking=True, description=description)
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        with warehouse.get_engine().begin() as conn:
            return result({findings: _sql_check(f"check_{name}.sql", context, conn)})

    return _check


every_metric_priced = build_sql_check(
    invoice_line_items,
    "every_metric_priced",
    "unpriced",
    "Every billable metric with usage in the month is priced: a metric with usage but no line "
    "items (missing from the rate card) fails, listing its customers and quantities, and blocks "
    "totals and commits.",
)
invoiced_equals_acknowledged = build_sql_check(
    invoice_line_items,
    "invoiced_equals_acknowledged",
    "mismatches",
    "Every invoiced quantity equals the usage the billing API acknowledged for the month (the "
    "ledger over the month's windows), so an invoice never bills what was not reported, nor "
    "leaves out what was.",
)
totals_equal_line_items = build_sql_check(
    invoice_totals,
    "totals_equal_line_items",
    "mismatches",
    "Every invoice total is the sum of its line items, and every line item is in whole cents.",
)


pricing_assets = [invoice_line_items, invoice_totals, commit_burndown]
pricing_checks = [every_metric_priced, invoiced_equals_acknowledged, totals_equal_line_items]
