"""Benchmark: what one page of the sandbox's POST /v1/usage costs, first page against the 100th.

    python -m benchmarks.sandbox_usage [--customers 2000 4000] [--days 30] [--repeat 21]

For each customer count, on a fresh database of the benchmark server (dropped afterwards), the
sandbox runs in its own process with its clock frozen after the month; every customer gets one
event per billable metric and day (and every 50th a `corrects_window` correction), ingested in
batches of 100. The query is the month reconciliation's: the whole month, `window_size` none, every
billable metric grouped by `corrects_window`, pages of 100 rows. It walks every page once (the whole
answer), then times page 1 and page 100 alternately and prints their median (p50) and p90.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Sequence
from typing import Any

import httpx

from benchmarks._common import machine, scratch_database
from benchmarks.sandbox_ingest import TOKEN, post_all, sandbox_process
from metronome_sandbox import jsonutil
from metronome_sandbox.metrics import load as load_metrics

MONTH_START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def events(customers: int, days: int) -> list[dict[str, Any]]:
    """One event per customer, billable metric and day; every 50th corrects an older window."""
    made = []
    for customer in range(customers):
        for metric in load_metrics():
            for day in range(days):
                index = len(made)
                properties: dict[str, Any] = {metric.property: str(1 + index % 7)}
                if index % 50 == 0:
                    properties["corrects_window"] = "2026-09-03T00:00:00Z"
                moment = MONTH_START + dt.timedelta(days=day, hours=index % 24)
                made.append(
                    {
                        "transaction_id": f"usage-bench-{index}",
                        "customer_id": f"cust_{customer:05d}",
                        "event_type": metric.event_type,
                        "timestamp": _stamp(moment),
                        "properties": properties,
                    }
                )
    return made


def query(days: int) -> dict[str, Any]:
    return {
        "window_size": "none",
        "starting_on": _stamp(MONTH_START),
        "ending_before": _stamp(MONTH_START + dt.timedelta(days=days)),
        "billable_metrics": [
            {"id": metric.id, "group_by": {"key": "corrects_window"}} for metric in load_metrics()
        ],
    }


def page(client: httpx.Client, body: dict[str, Any], cursor: str | None) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.post("/v1/usage", json=body, params={"next_page": cursor} if cursor else {})
    seconds = time.perf_counter() - started
    response.raise_for_status()
    return seconds, jsonutil.loads(response.content)


def measure(customers: int, days: int, repeat: int) -> dict[str, float]:
    with scratch_database() as url, sandbox_process(url) as base_url:
        clock = MONTH_START + dt.timedelta(days=days, hours=1)
        httpx.post(
            f"{base_url}/sandbox/clock", json={"now": clock.isoformat()}, headers=HEADERS
        ).raise_for_status()
        made = events(customers, days)
        post_all(base_url, [made[i : i + 100] for i in range(0, len(made), 100)], threads=4)
        with httpx.Client(base_url=base_url, headers=HEADERS, timeout=600) as client:
            return {"events": len(made), **time_pages(client, query(days), repeat)}


def time_pages(client: httpx.Client, body: dict[str, Any], repeat: int) -> dict[str, float]:
    """Walk every page once, then time page 1 and page 100 alternately."""
    cursors: list[str | None] = [None]
    started = time.perf_counter()
    rows = 0
    while True:
        _, answer = page(client, body, cursors[-1])
        rows += len(answer["data"])
        if answer["next_page"] is None:
            break
        cursors.append(answer["next_page"])
    walk = time.perf_counter() - started
    if len(cursors) < 100:
        raise RuntimeError(f"only {len(cursors)} pages: raise --customers")
    first: list[float] = []
    hundredth: list[float] = []
    for _ in range(repeat):
        first.append(page(client, body, cursors[0])[0])
        hundredth.append(page(client, body, cursors[99])[0])
    return {
        "rows": rows,
        "pages": len(cursors),
        "walk": walk,
        "p50_1": 1000 * statistics.median(first),
        "p90_1": 1000 * statistics.quantiles(first, n=10)[-1],
        "p50_100": 1000 * statistics.median(hundredth),
        "p90_100": 1000 * statistics.quantiles(hundredth, n=10)[-1],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(
        f"{'customers':>9} {'events':>9} {'rows':>7} {'pages':>6} {'all pages':>10} "
        f"{'page 1 p50':>11} {'p90':>8} {'page 100 p50':>13} {'p90':>8} {'100th/1st':>10}"
    )
    for customers in args.customers:
        m = measure(customers, args.days, args.repeat)
        print(
            f"{customers:>9} {m['events']:>9.0f} {m['rows']:>7.0f} {m['pages']:>6.0f} "
            f"{m['walk']:>8.1f} s {m['p50_1']:>8.1f} ms {m['p90_1']:>5.1f} ms "
            f"{m['p50_100']:>10.1f} ms {m['p90_100']:>5.1f} ms {m['p50_100'] / m['p50_1']:>9.2f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
