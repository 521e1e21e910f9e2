"""Benchmark: the events_sent asset against the database's own floor and a naive pandas pipeline.

    python -m benchmarks.aggregate [--rows 1000000 10000000] [--customers 5000]

For each size: build that many raw rows in one month (in SQL), then time
  pipeline  the `aggregated_usage/events_sent` asset materialized through Dagster (SQL push-down),
  floor     a bare `SELECT customer_id, SUM(value) ... GROUP BY customer_id` over the same rows,
  naive     rows read into pandas (in chunks) and filtered / grouped there.
Peak RSS of this process is printed after the pipeline runs (before the naive runs inflate it).
"""

from __future__ import annotations

import argparse
import datetime as dt

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from benchmarks._common import machine, peak_rss_mib, scratch_database, timed
from usage_assets.assets.aggregated_usage import usage_asset_key, usage_assets
from usage_billing import collectors, db
from usage_billing.resources import WarehouseResource

MONTH = "2025-03"
START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
END = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)

GENERATE = """
INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, value, properties)
SELECT
  'ev-' || g,
  'cust_' || lpad(((hashint8(g) & 2147483647) % :customers)::text, 5, '0'),
  'events_sent',
  :start + (g::float8 / :rows) * interval '31 days',
  1 + (g % 977),
  jsonb_build_object(
    'environment_type', CASE WHEN g % 10 = 0 THEN 'STAGING' ELSE 'PRODUCTION' END,
    'is_duplicate', g % 50 = 0)
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
"""

FLOOR = """
SELECT customer_id, SUM(value) FROM raw_metrics
WHERE occurred_at >= :start AND occurred_at < :end
GROUP BY customer_id
"""

# The same query grouped by UTC day as well, as the collector must: the floor for its output shape.
FLOOR_DAILY = """
SELECT customer_id, date_bin('1 day', occurred_at, timestamptz '2000-01-01 00:00:00+00'), SUM(value)
FROM raw_metrics
WHERE occurred_at >= :start AND occurred_at < :end
GROUP BY 1, 2
"""

NAIVE = """
SELECT customer_id, occurred_at, value, properties FROM raw_metrics
WHERE metric = 'events_sent' AND occurred_at >= :start AND occurred_at < :end
"""


def grow(engine: sa.Engine, rows: int, have: int, customers: int) -> None:
    """Add rows (have+1 .. rows) and refresh statistics and the visibility map."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(GENERATE),
            {"customers": customers, "start": START, "rows": rows, "first": have + 1, "last": rows},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE raw_metrics")


def pipeline(url: str) -> None:
    result = dg.materialize(
        [a for a in usage_assets if a.key == usage_asset_key("events_sent")],
        partition_key=MONTH,
        resources={"warehouse": WarehouseResource(database_url=url)},
        raise_on_error=True,
    )
    assert result.success
    total = result.asset_materializations_for_node("aggregated_usage__events_sent")[0]
    assert total.metadata["rows"].value > 0


def replace_sql(engine: sa.Engine) -> None:
    """The asset's SQL alone (delete, aggregate-and-insert, summary), without Dagster around it."""
    with engine.begin() as conn:
        collectors.replace_partition(conn, collectors.collectors()["events_sent"], START, END, END)


def floor(engine: sa.Engine, query: str = FLOOR) -> int:
    with engine.connect() as conn:
        conn.exec_driver_sql("SET work_mem = '256MB'")  # the same memory the collector gets
        return len(conn.execute(sa.text(query), {"start": START, "end": END}).all())


def naive(engine: sa.Engine) -> int:
    parts = []
    with engine.connect() as conn:
        for chunk in pd.read_sql(
            sa.text(NAIVE), conn, params={"start": START, "end": END}, chunksize=500_000
        ):
            env = chunk["properties"].map(lambda p: p.get("environment_type"))
            dup = chunk["properties"].map(lambda p: p.get("is_duplicate") is True)
            keep = chunk[(env == "PRODUCTION") & ~dup]
            day = keep["occurred_at"].dt.floor("D")
            parts.append(keep.groupby([keep["customer_id"], day])["value"].sum())
    return len(pd.concat(parts).groupby(level=[0, 1]).sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--naive-repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    results = []
    with scratch_database() as url:
        engine = db.create_engine(url)
        have = 0
        for rows in sorted(args.rows):
            grow(engine, rows, have, args.customers)
            have = rows
            t_pipeline, _ = timed(lambda: pipeline(url))
            t_sql, _ = timed(lambda: replace_sql(engine))
            t_floor, _ = timed(lambda: floor(engine))
            t_daily, _ = timed(lambda: floor(engine, FLOOR_DAILY))
            results.append(
                {
                    "rows": rows,
                    "pipeline": t_pipeline,
                    "sql": t_sql,
                    "floor": t_floor,
                    "daily": t_daily,
                    "peak_rss_mib": peak_rss_mib(),
                }
            )
            print(
                f"{rows:>11,} rows: pipeline {t_pipeline:.2f}s (SQL {t_sql:.2f}s) "
                f"floor {t_floor:.2f}s daily floor {t_daily:.2f}s "
                f"peak RSS {peak_rss_mib():.0f} MiB",
                flush=True,
            )
        # Naive last: its memory would hide the pipeline's peak. Same table, rows of every size.
        for result in sorted(results, key=lambda r: -r["rows"]):
            with engine.begin() as conn:
                conn.execute(
                    sa.text("DELETE FROM raw_metrics WHERE substr(event_id, 4)::bigint > :n"),
                    {"n": result["rows"]},
                )
            t_naive, _ = timed(lambda: naive(engine), repeat=args.naive_repeat)
            result["naive"] = t_naive
    print(
        "\n| raw rows | pipeline (asset) | its SQL alone | floor (bare GROUP BY) "
        "| pipeline / floor | daily floor | pipeline / daily floor | naive pandas "
        "| naive / pipeline | peak RSS after pipeline |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(results, key=lambda r: r["rows"]):
        print(
            f"| {r['rows']:,} | {r['pipeline']:.2f} s | {r['sql']:.2f} s | {r['floor']:.2f} s | "
            f"{r['pipeline'] / r['floor']:.2f}x | {r['daily']:.2f} s | "
            f"{r['pipeline'] / r['daily']:.2f}x | {r['naive']:.1f} s | "
            f"{r['naive'] / r['pipeline']:.0f}x | {r['peak_rss_mib']:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
