"""Benchmark: events/second the reporting path delivers to the sandbox, against a naive loop
(one event per request) and the sandbox's own ceiling (pre-built batches of 100), all in one run.

    python -m benchmarks.reporting [--customers 5000] [--days 30] [--naive-events 2000]

The sandbox runs in its own process (no rate limit, no faults) on a fresh database of the local
PostgreSQL, as in `benchmarks.sandbox_ingest`. The pipeline part reports a month-sized partition of
`customers x days` daily windows: plan the deltas into the outbox (one SQL statement), send them
in batches of 100 with the production client, acknowledge every batch in the ledger.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import httpx
import sqlalchemy as sa

from benchmarks._common import machine, scratch_database
from benchmarks.sandbox_ingest import TOKEN, make_events, post_all, sandbox_process
from usage_billing import db, reporting
from usage_billing.resources import BillingApiResource

TRUTH = """
INSERT INTO usage_events (event_type, customer_id, window_start, groups, quantity, properties)
SELECT 'events_sent', 'cust_' || lpad(c::text, 5, '0'), :start + d * interval '1 day', '{}',
       1 + (c * 7 + d) % 1000, jsonb_build_object('events_sent', (1 + (c * 7 + d) % 1000)::text)
FROM generate_series(1, :customers) AS c, generate_series(0, :days - 1) AS d
"""


def naive_loop(base_url: str, count: int) -> float:
    """One event per request, one after the other: events/second."""
    events = make_events("naive", count)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        for event in events:
            client.post("/v1/ingest", json=[event]).raise_for_status()
    return count / (time.perf_counter() - started)


def pipeline(engine: sa.Engine, base_url: str, customers: int, days: int) -> tuple[float, float]:
    """Report the partition; returns (seconds, events/second)."""
    today = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(), dt.UTC)
    start = today - dt.timedelta(days=days)
    with engine.begin() as conn:
        conn.execute(sa.text(TRUTH), {"start": start, "customers": customers, "days": days})
    api = BillingApiResource(base_url=base_url, bearer_token=TOKEN, max_concurrency=4)
    started = time.perf_counter()
    stats = reporting.report_partition(
        engine, api.get_client(), "bench", start, today, dt.datetime.now(dt.UTC)
    )
    seconds = time.perf_counter() - started
    assert stats.acknowledged == customers * days, stats
    return seconds, stats.acknowledged / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--naive-events", type=int, default=2000)
    parser.add_argument("--ceiling-events", type=int, default=100_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with scratch_database() as url, sandbox_process(url) as base_url:
        engine = db.create_engine(url)
        naive = naive_loop(base_url, args.naive_events)
        events = make_events("ceiling", args.ceiling_events)
        batches = [events[i : i + 100] for i in range(0, len(events), 100)]
        ceiling = post_all(base_url, batches, threads=4).events_per_second
        seconds, delivered = pipeline(engine, base_url, args.customers, args.days)
        engine.dispose()
    total = args.customers * args.days
    print(f"naive loop (1 event/request): {naive:,.0f} events/s")
    print(f"sandbox ceiling (batches of 100, 4 threads): {ceiling:,.0f} events/s")
    print(
        f"pipeline: {total:,} events ({args.customers} customers x {args.days} daily windows) "
        f"in {seconds:.1f} s = {delivered:,.0f} events/s"
    )
    print(f"pipeline / naive = {delivered / naive:.0f}x")
    print(f"ceiling / pipeline = {ceiling / delivered:.2f}x")


if __name__ == "__main__":
    main()
