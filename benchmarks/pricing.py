"""Benchmark: pricing a month against the aggregation it follows.

    python -m benchmarks.pricing [--customers 5000] [--commits 500] [--repeat 2]

Builds one month (March 2025) of raw metrics in SQL for every raw metric the seven collectors
read: per customer and day, 4 events_sent rows, 2 Agentforce conversations of 2 actions, a Fin and
a Zendesk ticket, a prevented chargeback alert, 3 approved orders, a won dispute every third day.
Then times, through Dagster, in one process:

  aggregation  the seven `aggregated_usage/*` assets and `usage_events` for the month,
  pricing      `invoice_line_items`, `invoice_totals` and `commit_burndown` with their three
               checks (the ledger is filled as if the month had been reported, so the
               acknowledged check compares every line),

and breaks pricing down (the month's usage query, the Python pass, the writes). Reporting is
left out of the month's run: it only makes the run longer, so pricing / aggregation is an upper
bound of what pricing adds to a month's run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from benchmarks._common import machine, peak_rss_mib, scratch_database, timed
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.priced_usage import pricing_assets, pricing_checks
from usage_assets.assets.usage_events import usage_events
from usage_billing import db, invoices, pricing
from usage_billing.resources import AlertsResource, WarehouseResource

MONTH = "2025-03"
START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
DAYS = 31
AS_OF = dt.datetime(2025, 3, 31, 12, tzinfo=dt.UTC)  # the month's last run, half a day left

# (raw metric, rows per customer and day, occurred_at offset, value, properties) from the
# customer number c, the day d and the row k.
_ROWS = [
    ("events_sent", 4, "k * interval '5 hours'", "1 + (c * 7 + d * 13 + k) % 5000",
     "jsonb_build_object('environment_type', 'PRODUCTION')"),
    ("chat_action", 4, "(k / 2) * interval '9 hours' + (k % 2) * interval '3 minutes'", "1",
     "jsonb_build_object('conversation_id', 'cv' || d || '-' || k / 2, 'actor', "
     "CASE WHEN k % 2 = 0 THEN 'customer' ELSE 'agent' END, 'action', 'message')"),
    ("support_event", 4, "k * interval '10 minutes'", "1",
     "jsonb_build_object('ticket_id', 't' || d || '-' || k / 2, 'bot', "
     "CASE WHEN k < 2 THEN 'fin' ELSE 'zendesk' END, 'kind', "
     "CASE WHEN k % 2 = 0 THEN 'ai_answer' WHEN k < 2 THEN 'resolution_confirmed' "
     "ELSE 'ai_answer' END)"),
    ("chargeback_alert", 1, "interval '2 hours'", "1",
     "jsonb_build_object('alert_id', 'a' || d, 'outcome', 'prevented')"),
    ("transaction_decision", 3, "k * interval '4 hours'", "1",
     "jsonb_build_object('order_id', 'o' || d || '-' || k, 'decision', 'approved', "
     "'amount', ((c * 31 + d * 17 + k * 7) % 90000 / 100.0 + 10)::text)"),
    ("chargeback_dispute", 1, "interval '11 hours'", "1",
     "jsonb_build_object('dispute_id', 'd' || d, 'status', "
     "CASE WHEN d % 3 = 0 THEN 'won' ELSE 'pending' END, 'amount', "
     "((c * 13 + d) % 40000 / 100.0 + 5)::text)"),
]  # fmt: skip
GENERATE = """
INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, value, properties)
SELECT '{metric}-' || c || '-' || d || '-' || k, 'cust_' || lpad(c::text, 5, '0'), '{metric}',
       CAST(:start AS timestamptz) + d * interval '1 day' + {offset}, {value}, {properties}
FROM generate_series(1, :customers) AS c, generate_series(0, :days - 1) AS d,
     generate_series(0, {per_day} - 1) AS k
"""
# As if the month had been reported and acknowledged: what invoiced_equals_acknowledged reads.
REPORTED = """
INSERT INTO usage_ledger (event_type, customer_id, window_start, groups, committed, acknowledged,
                          revision)
SELECT event_type, customer_id, window_start, groups, quantity, quantity, 1 FROM usage_events
ON CONFLICT DO NOTHING
"""


def generate(engine: sa.Engine, customers: int) -> int:
    with engine.begin() as conn:
        for metric, per_day, offset, value, properties in _ROWS:
            statement = GENERATE.format(
                metric=metric, per_day=per_day, offset=offset, value=value, properties=properties
            )
            conn.execute(sa.text(statement), {"start": START, "customers": customers, "days": DAYS})
        rows = conn.execute(sa.text("SELECT count(*) FROM raw_metrics")).scalar_one()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE raw_metrics")
    return rows


def write_contracts(customers: int, commits: int) -> Path:
    """Commits for every (customers // commits)-th customer, a year from January 2025; about one
    in six is projected to run out (an alert each)."""
    lines = ["contracts:"]
    for n in range(1, customers + 1, max(customers // commits, 1)):
        lines.append(f"  - customer_id: cust_{n:05d}")
        lines.append(
            f'    commit: {{amount: "{12000 + n * 3}.00", starts_on: "2025-01-01", '
            'ends_before: "2026-01-01"}'
        )
    path = Path(tempfile.mkdtemp()) / "contracts.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def materialize(assets: list, url: str) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        assets,
        partition_key=MONTH,
        resources={"warehouse": WarehouseResource(database_url=url), "alerts": AlertsResource()},
        raise_on_error=True,
    )
    assert result.success
    return result


def breakdown(engine: sa.Engine) -> dict[str, float]:
    """Pricing's parts, each in its own rolled-back transaction."""
    card = pricing.load_rate_card()
    parts: dict[str, float] = {}
    with engine.connect() as conn:
        start = time.perf_counter()
        rows = invoices.month_usage(conn, MONTH, MONTH)
        parts["usage query"] = time.perf_counter() - start
        start = time.perf_counter()
        priced = invoices.price_usage(rows, card)
        parts["Python pass"] = time.perf_counter() - start
        assert not priced.unpriced
        start = time.perf_counter()
        invoices.replace_line_items(conn, MONTH, card, AS_OF)
        invoices.replace_totals(conn, MONTH)
        parts["query + pass + writes"] = time.perf_counter() - start
        conn.rollback()
    parts["line items"] = sum(len(i.line_items) for i in priced.invoices)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    os.environ["USAGE_BILLING_NOW"] = AS_OF.isoformat()
    os.environ["USAGE_CONTRACTS"] = str(write_contracts(args.customers, args.commits))
    print(f"machine: {machine()}")
    with scratch_database() as url:
        engine = db.create_engine(url)
        rows = generate(engine, args.customers)
        print(f"{rows:,} raw rows for {args.customers:,} customers in {MONTH}", flush=True)
        t_aggregation, _ = timed(
            lambda: materialize([*usage_assets, usage_events], url), args.repeat
        )
        with engine.begin() as conn:
            conn.execute(sa.text(REPORTED))
            aggregated = conn.execute(sa.text("SELECT count(*) FROM aggregated_usage")).scalar()
        pricing_step = [*pricing_assets, *pricing_checks]
        t_pricing, _ = timed(lambda: materialize(pricing_step, url), args.repeat)
        parts = breakdown(engine)
        engine.dispose()
    print(f"aggregated rows: {aggregated:,}; line items: {parts.pop('line items'):,}")
    print(
        "\n| raw rows | customers x metrics | aggregation + usage events (Dagster) "
        "| pricing + checks + commits (Dagster) | pricing / aggregation | peak RSS |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {rows:,} | {args.customers:,} x 7 | {t_aggregation:.2f} s | {t_pricing:.2f} s "
        f"| {t_pricing / t_aggregation:.1%} | {peak_rss_mib():.0f} MiB |"
    )
    print("\npricing's parts (in SQL and one Python pass, no Dagster):")
    for name, seconds in parts.items():
        print(f"  {name}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
