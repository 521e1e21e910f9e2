"""Benchmark: the usage events rebuild alone, against customers, beside its floor.

    python -m benchmarks.usage_events [--customers 1000 2000 4000] [--repeat 3]

The month close measures `usage_events` inside a database holding the whole month's raw metrics;
this one asks whether the step itself grows linearly. On a scratch database, for each customer
count: a month of aggregated usage shaped like the month close's (7 billable metrics, 30 days,
about 5 of 8 customer-days with usage, written in random order as the collectors' hash
aggregates write it), then the best of `--repeat` timings of
  rebuild  `usage_events.replace_partition` of the month (the asset's work), into an empty table,
  floor    the same SELECT into a copy of `usage_events` without its primary key.
It prints both, their ratio, events per second and the exponent k of time ~ N^k against the
smallest count (k <= 1 is at most linear).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import time
from collections.abc import Callable

import sqlalchemy as sa

from benchmarks._common import machine, scratch_database
from usage_billing import db, usage_events

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
SEED = """
TRUNCATE aggregated_usage;
SELECT setseed(0.42);
INSERT INTO aggregated_usage (billable_metric, customer_id, window_start, groups, value)
SELECT metric, 'cust_' || lpad(c::text, 5, '0'), timestamptz '2026-11-01' + d * interval '1 day',
       '{{}}', round((random() * 1000)::numeric, 2)
FROM unnest(array['agentforce_conversations', 'chargeflow_prevented_chargebacks',
                  'chargeflow_recovered_amount', 'events_sent', 'fin_resolutions',
                  'riskified_approved_value', 'zendesk_automated_resolutions']) AS metric,
     generate_series(1, {customers}) AS c, generate_series(0, 29) AS d
WHERE random() < 0.625
ORDER BY random();
ANALYZE aggregated_usage;
"""
FLOOR = sa.text("""
INSERT INTO usage_events_floor
SELECT billable_metric, customer_id, window_start, groups, value,
       groups || jsonb_build_object(billable_metric, trim_scale(value)::text)
FROM aggregated_usage
WHERE window_start >= :period_start AND window_start < :period_end
""")


def best(
    engine: sa.Engine, table: str, run: Callable[[sa.Connection], object], repeat: int
) -> float:
    """Best of `repeat` timings of `run(conn)`, each into an emptied `table`."""
    timings = []
    for _ in range(repeat):
        with engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {table}")
        with engine.begin() as conn:
            started = time.perf_counter()
            run(conn)
            timings.append(time.perf_counter() - started)
    return min(timings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(machine())
    params = {"period_start": START, "period_end": END}
    results: list[tuple[int, int, float, float]] = []
    with scratch_database() as url:
        engine = db.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE usage_events_floor (LIKE usage_events INCLUDING DEFAULTS)"
            )
        for customers in args.customers:
            with engine.begin() as conn:
                conn.exec_driver_sql(SEED.format(customers=customers))
                events = conn.execute(sa.text("SELECT count(*) FROM aggregated_usage")).scalar()
            rebuild = best(
                engine,
                "usage_events",
                lambda conn: usage_events.replace_partition(conn, START, END),
                args.repeat,
            )
            floor = best(
                engine, "usage_events_floor", lambda conn: conn.execute(FLOOR, params), args.repeat
            )
            results.append((customers, events, rebuild, floor))
            print(
                f"{customers:>6,} customers, {events:>8,} events: rebuild {rebuild:.2f} s "
                f"({events / rebuild:,.0f}/s), floor {floor:.2f} s, rebuild/floor "
                f"{rebuild / floor:.2f}",
                flush=True,
            )
        engine.dispose()
    base = results[0]
    for customers, _, rebuild, floor in results[1:]:
        scale = customers / base[0]
        k_rebuild = math.log(rebuild / base[2]) / math.log(scale)
        k_floor = math.log(floor / base[3]) / math.log(scale)
        print(f"x{scale:.0f} customers: rebuild k = {k_rebuild:.2f}, floor k = {k_floor:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
