"""Benchmark: the sandbox's POST /v1/ingest ceiling, batches of 100 against one event per request.

    python -m benchmarks.sandbox_ingest [--events 100000] [--single-events 5000] [--threads 4]

Starts `python -m metronome_sandbox` (no rate limit, no faults) as a separate process on a fresh
database of the benchmark server (BENCH_DATABASE_URL, default the local PostgreSQL; dropped
afterwards), posts the events over keep-alive connections (one httpx.Client per thread), checks
through /v1/usage that every event was counted exactly once, and prints events/second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from benchmarks._common import machine, scratch_database
from metronome_sandbox import jsonutil
from metronome_sandbox.metrics import load as load_metrics

TOKEN = "benchmark-token"
CUSTOMERS = 100
PROJECT_ROOT = Path(__file__).parents[1]


@dataclass(frozen=True)
class Run:
    """Outcome of posting one set of events."""

    events: int
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def summary(self, label: str) -> str:
        ms = sorted(1000 * latency for latency in self.latencies)
        p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
        return (
            f"{label:<22} {self.events:>8} events {self.requests:>7} requests "
            f"{self.seconds:>7.2f} s {self.events_per_second:>9.0f} events/s "
            f"{self.requests / self.seconds:>7.0f} req/s  "
            f"latency p50 {statistics.median(ms):.1f} ms p99 {p99:.1f} ms"
        )


@contextmanager
def sandbox_process(database_url: str) -> Iterator[str]:
    """`python -m metronome_sandbox --port 0` on `database_url`; yields its base URL."""
    env = {**os.environ, "USAGE_DATABASE_URL": database_url, "METRONOME_BEARER_TOKEN": TOKEN}
    command = [sys.executable, "-m", "metronome_sandbox", "--port", "0"]
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        banner = process.stdout.readline() if process.stdout else ""
        if "listening on" not in banner:
            raise RuntimeError(f"sandbox did not start: {banner!r}")
        yield banner.split(" on ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=30)


def make_events(prefix: str, count: int) -> list[dict[str, Any]]:
    """`count` events_sent events with quantity 1, spread over customers and the last hours."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return [
        {
            "transaction_id": f"{prefix}-{index}",
            "customer_id": f"cust_{index % CUSTOMERS:03d}",
            "event_type": "events_sent",
            "timestamp": (now - dt.timedelta(seconds=index % 36_000)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "properties": {"events_sent": "1", "environment_type": "PRODUCTION"},
        }
        for index in range(count)
    ]


def post_all(base_url: str, batches: Sequence[list[dict[str, Any]]], threads: int) -> Run:
    """Post every batch from `threads` keep-alive clients; every answer must be 200."""
    bodies = [jsonutil.dumps(batch).encode() for batch in batches]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def worker(share: Sequence[bytes]) -> list[float]:
        latencies = []
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
            for body in share:
                started = time.perf_counter()
                response = client.post("/v1/ingest", content=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"ingest answered {response.status_code}: {response.text}")
        return latencies

    shares = [bodies[index::threads] for index in range(threads)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        latencies = [value for part in pool.map(worker, shares) for value in part]
    seconds = time.perf_counter() - started
    return Run(sum(len(batch) for batch in batches), len(batches), seconds, latencies)


def counted_usage(base_url: str) -> Decimal:
    """Total events_sent the sandbox reports over the last two days, all customers."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    metric = next(m for m in load_metrics() if m.name == "events_sent")
    query = {
        "window_size": "none",
        "starting_on": (today - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ending_before": (today + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "billable_metrics": [{"id": metric.id}],
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(
        f"{base_url}/v1/usage", json=query, params={"limit": 1000}, headers=headers, timeout=60
    )
    response.raise_for_status()
    return sum((row["value"] for row in jsonutil.loads(response.content)["data"]), Decimal(0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events sent in batches")
    parser.add_argument("--single-events", type=int, default=5_000, help="events sent one by one")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    print(machine())
    with scratch_database() as database_url, sandbox_process(database_url) as base_url:
        events = make_events("batch", args.events)
        batched = post_all(
            base_url,
            [events[i : i + args.batch] for i in range(0, len(events), args.batch)],
            args.threads,
        )
        singles = post_all(
            base_url, [[e] for e in make_events("single", args.single_events)], args.threads
        )
        total = counted_usage(base_url)
    print(f"threads {args.threads}, keep-alive httpx clients, sandbox in its own process")
    print(batched.summary(f"batches of {args.batch}"))
    print(singles.summary("one event per request"))
    print(f"batching is {batched.events_per_second / singles.events_per_second:.1f}x faster")
    expected = args.events + args.single_events
    print(f"/v1/usage counts {total} events (expected {expected})")
    return 0 if total == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
