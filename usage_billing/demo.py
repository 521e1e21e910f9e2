"""`usage-billing demo`: the whole pipeline on the embedded default, end to end."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

import sql
from usage_billing import clock, db, instance, seed
from usage_billing.collectors import collectors
from usage_billing.materialize import materialize


def demo_months(now: dt.datetime) -> tuple[str, str]:
    """The previous and the current month."""
    previous = (now.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return previous, now.strftime("%Y-%m")


def month_table(conn: sa.Connection, month: str) -> list[tuple[str, int, Decimal]]:
    """Per billable metric: raw rows read by its collector, aggregated total."""
    start, end = seed.month_bounds(month)
    params = {"period_start": start, "period_end": end}
    raw = dict(conn.execute(sa.text(sql.read("raw_rows_month.sql")), params).all())
    totals: dict[str, Decimal] = {}
    for row in conn.execute(sa.text(sql.read("usage_month.sql")), params):
        totals[row.billable_metric] = totals.get(row.billable_metric, Decimal(0)) + Decimal(
            row.value
        )
    return [
        (
            metric,
            sum(raw.get(r.name, 0) for r in collector.raw_metrics),
            totals.get(metric, Decimal(0)),
        )
        for metric, collector in collectors().items()
    ]


def run(customers: int, seed_value: int) -> int:
    instance.prepare()
    engine = db.create_engine()
    months = demo_months(clock.now())
    for month in months:
        result = seed.seed(engine, seed.plan(month, customers, seed_value))
        print(f"seeded {month}: {result.loaded} new raw rows, {result.duplicate} already there")
    failed = False
    for month in months:
        outcome = materialize(month)
        print(f"materialized {month}: run {outcome.run_id} {'ok' if outcome.success else 'FAILED'}")
        failed |= not outcome.success
    with engine.connect() as conn:
        for month in months:
            print(f"\n{month}\n  {'billable metric':<34} {'raw rows':>10} {'aggregated':>22}")
            for metric, raw_rows, total in month_table(conn, month):
                print(f"  {metric:<34} {raw_rows:>10} {total:>22}")
    print(
        "\nNext: `usage-billing usage --month YYYY-MM --json`, or `usage-billing ui` for Dagster."
    )
    return 1 if failed else 0
