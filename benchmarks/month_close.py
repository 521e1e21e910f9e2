"""Benchmark: a whole month's close through Dagster, as the CLI runs it, at several customer counts.

    python -m benchmarks.month_close [--customers 1000 2000 4000] [--month 2026-11] [--seed 1]

For each customer count N, on a fresh database of the benchmark server (BENCH_DATABASE_URL,
default the local PostgreSQL; dropped afterwards): seed N customers for the month with
`usage_billing.synthetic` (all seven metrics), start the sandbox in its own process on the same
database, then run `usage-billing materialize --month M` twice in a child process, as a user
would: the first close with both clocks at 00:30 UTC on the 1st of the next month, and a no-op
re-run (no new data) an hour later, both clocks moved. Then the daily history reconciliation
job, in process, when the code location has one. Per run it prints the wall time, each Dagster
step's time (from the run's step events), how many collectors kept their partition, the
reported events per second, the child's peak RSS (its VmHWM; and the step where its sampled RSS
peaks) and the peak memory of the PostgreSQL backends serving the database (their summed PSS),
sampled every 0.2 s. The last table shows how each figure grows with N: its ratio to the
smallest N and the exponent k of figure ~ N^k (k <= 1 is at most linear).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa

from benchmarks._common import machine, scratch_database
from benchmarks.sandbox_ingest import TOKEN, sandbox_process
from usage_billing import db, periods, synthetic

PROJECT_ROOT = Path(__file__).parents[1]
HISTORY_JOB = "billing_api_history_reconciliation"
# The re-run comes an hour after the close, as a retry or the next refresh would: the clock moves,
# so collectors whose value can change with it (settlement windows) must tell.
RERUN_AFTER = dt.timedelta(hours=1)


@dataclass
class RunFigures:
    """One `usage-billing materialize` run."""

    seconds: float
    steps: dict[str, float]
    step_rss_mib: dict[str, float]
    sent: int
    child_rss_mib: float
    postgres_mib: float
    success: bool
    kept: int = 0  # collector partitions kept: nothing they read had changed

    @property
    def events_per_second(self) -> float:
        reporting = self.steps.get("reported_usage", 0.0)
        return self.sent / reporting if reporting else 0.0


@dataclass
class SizeFigures:
    """Everything measured at one customer count."""

    customers: int
    raw_rows: int
    seed_seconds: float
    runs: dict[str, RunFigures] = field(default_factory=dict)
    history_seconds: float | None = None


class Memory:
    """Samples, every 0.2 s in a thread, the child's RSS and the summed PSS of the PostgreSQL
    backends connected to one database, with the wall-clock time of each sample."""

    def __init__(self, database: str) -> None:
        self.marker = f" {database} "
        self.child: psutil.Process | None = None
        self.samples: list[tuple[float, int, int]] = []  # (time, child RSS KiB, PostgreSQL KiB)
        self.child_high_water_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _backends(self) -> Iterator[int]:
        for process in psutil.process_iter(["name", "cmdline"]):
            title = " ".join(process.info["cmdline"] or ())
            if process.info["name"] == "postgres" and self.marker in f"{title} ":
                yield process.pid

    @staticmethod
    def _pss_kib(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        return int(line.split()[1])
        except OSError:
            pass  # the backend ended between listing and reading
        return 0

    def _child_kib(self) -> int:
        """The child's RSS now; also keeps the kernel's high-water mark of it (VmHWM), which
        misses no spike between samples. (wait4's ru_maxrss would not do: it counts the
        benchmark's own memory, which the child shares between fork and exec.)"""
        if self.child is None:
            return 0
        try:
            with open(f"/proc/{self.child.pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            self.child_high_water_kib = max(
                self.child_high_water_kib, int(fields["VmHWM"].split()[0])
            )
            return int(fields["VmRSS"].split()[0])
        except (OSError, KeyError, ValueError):
            return 0  # the child has exited

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            postgres = sum(self._pss_kib(pid) for pid in self._backends())
            self.samples.append((time.time(), self._child_kib(), postgres))

    def peak_postgres_mib(self) -> float:
        return max((sample[2] for sample in self.samples), default=0) / 1024

    def peak_child_mib(self, start: float, end: float) -> float:
        """The child's largest sampled RSS between two wall-clock times (a step's start and end)."""
        inside = [rss for at, rss, _ in self.samples if start <= at <= end]
        return max(inside, default=0) / 1024

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def close_time(month: str) -> dt.datetime:
    """00:30 UTC on the 1st after `month`: when the monthly-close schedule runs."""
    return periods.month_bounds(month)[1] + dt.timedelta(minutes=30)


def default_month() -> str:
    return periods.previous_month(dt.datetime.now(dt.UTC))


def seed(url: str, month: str, customers: int, seed_value: int) -> tuple[int, float]:
    engine = db.create_engine(url)
    started = time.perf_counter()
    try:
        loaded = synthetic.seed(engine, synthetic.plan(month, customers, seed_value)).loaded
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE raw_metrics")
    finally:
        engine.dispose()
    return loaded, time.perf_counter() - started


def step_times(run_id: str) -> tuple[dict[str, tuple[float, float]], int, int]:
    """(start, end) wall-clock times per step key from the run's step events, reported_usage's
    `sent` metadata, and how many collectors kept their partition (`recomputed` false)."""
    import dagster as dg

    from usage_billing.cli import instance

    started: dict[str, float] = {}
    times: dict[str, tuple[float, float]] = {}
    sent = kept = 0
    with instance.get_instance() as dagster:
        for record in dagster.all_logs(run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[event.step_key] = record.timestamp
            elif event.event_type in (
                dg.DagsterEventType.STEP_SUCCESS,
                dg.DagsterEventType.STEP_FAILURE,
            ):
                times[event.step_key] = (started[event.step_key], record.timestamp)
            elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                materialization = event.event_specific_data.materialization
                metadata = materialization.metadata
                if materialization.asset_key == dg.AssetKey("reported_usage"):
                    sent = int(metadata["sent"].value)
                recomputed = metadata.get("recomputed")
                kept += recomputed is not None and recomputed.value is False
    return times, sent, kept


def materialize(month: str, database: str) -> RunFigures:
    """`usage-billing materialize --month M` in a child process, timed and watched."""
    command = [sys.executable, "-m", "usage_billing.cli", "materialize", "--month", month]
    with Memory(database) as memory:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
        memory.child = psutil.Process(child.pid)
        output = child.stdout.read() if child.stdout else ""
        _, status, _ = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    line = next((line for line in output.splitlines() if line.startswith("run ")), "")
    if not line:
        raise RuntimeError(f"materialize printed no run id:\n{output}")
    spans, sent, kept = step_times(line.split()[1])
    return RunFigures(
        seconds=seconds,
        steps={step: end - start for step, (start, end) in spans.items()},
        step_rss_mib={step: memory.peak_child_mib(*span) for step, span in spans.items()},
        sent=sent,
        child_rss_mib=memory.child_high_water_kib / 1024,
        postgres_mib=memory.peak_postgres_mib(),
        success=child.returncode == 0,
        kept=kept,
    )


def history_reconciliation() -> float | None:
    """Seconds of the daily history reconciliation job, in process (None if there is none)."""
    from usage_assets.definitions import defs
    from usage_billing.cli import instance

    if HISTORY_JOB not in {job.name for job in defs.jobs or ()}:
        return None  # a code location from before the daily history reconciliation
    job = defs.resolve_job_def(HISTORY_JOB)
    with instance.get_instance() as dagster:
        started = time.perf_counter()
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        result = job.execute_in_process(instance=dagster, raise_on_error=False, run_config=quiet)
        seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError("the history reconciliation failed on a clean close")
    return seconds


@contextmanager
def environment(url: str, base_url: str, now: dt.datetime, home: str) -> Iterator[None]:
    """What the CLI reads: the database, the billing API, the clock, a state directory."""
    saved = dict(os.environ)
    os.environ.update(
        {
            "USAGE_DATABASE_URL": url,
            "METRONOME_BASE_URL": base_url,
            "METRONOME_BEARER_TOKEN": TOKEN,
            "USAGE_BILLING_NOW": now.isoformat(),
            "USAGE_BILLING_HOME": home,
        }
    )
    for name in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def set_clock(base_url: str, now: dt.datetime) -> None:
    """The pipeline's clock (the child reads USAGE_BILLING_NOW) and the sandbox's, together."""
    os.environ["USAGE_BILLING_NOW"] = now.isoformat()
    httpx.post(
        f"{base_url}/sandbox/clock",
        json={"now": now.isoformat()},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).raise_for_status()


def measure(customers: int, month: str, seed_value: int) -> SizeFigures:
    now = close_time(month)
    with scratch_database() as url, tempfile.TemporaryDirectory() as home:
        database = sa.make_url(url).database or ""
        os.environ["USAGE_BILLING_NOW"] = now.isoformat()  # the seed plan stops at the clock
        raw_rows, seed_seconds = seed(url, month, customers, seed_value)
        figures = SizeFigures(customers, raw_rows, seed_seconds)
        with sandbox_process(url) as base_url, environment(url, base_url, now, home):
            for label, clock in (("first close", now), ("no-op re-run", now + RERUN_AFTER)):
                set_clock(base_url, clock)
                figures.runs[label] = run = materialize(month, database)
                print(f"  {customers} customers, {label}: {run.seconds:.1f} s", flush=True)
                if not run.success:
                    raise RuntimeError(f"{label} failed at {customers} customers")
            figures.history_seconds = history_reconciliation()
    return figures


def display(step: str) -> str:
    """A short label for a step key: `collector events_sent`, `check raw_data_gaps events_sent`."""
    name = step.removeprefix("aggregated_usage__")
    if name == step:
        return step
    for check in ("raw_data_gaps",):
        if name.endswith(f"_{check}"):
            return f"check {check} {name.removesuffix(f'_{check}')}"
    return f"collector {name}"


def _step_names(sizes: list[SizeFigures]) -> list[str]:
    names: dict[str, None] = {}
    for size in sizes:
        for run in size.runs.values():
            names.update(dict.fromkeys(run.steps))
    return list(names)


def report(sizes: list[SizeFigures]) -> None:
    header = "figure".ljust(50) + "".join(f"{s.customers:>12,}" for s in sizes)
    print(f"\n{header}\n{'-' * len(header)}")

    def row(label: str, values: list[float | None], unit: str = "") -> None:
        cells = "".join(f"{'-' if v is None else f'{v:.2f}':>12}" for v in values)
        print(f"{(label + unit).ljust(50)}{cells}")

    row("raw rows", [s.raw_rows for s in sizes])
    row("seed", [s.seed_seconds for s in sizes], " (s)")
    for label in ("first close", "no-op re-run"):
        runs = [s.runs[label] for s in sizes]
        row(f"{label}: whole run", [r.seconds for r in runs], " (s)")
        for step in _step_names(sizes):
            row(f"  {display(step)}", [r.steps.get(step) for r in runs], " (s)")
        row("  collectors that kept their partition", [r.kept for r in runs])
        row("  events sent", [r.sent for r in runs])
        row("  events/s of reported_usage", [r.events_per_second for r in runs])
        row("  peak RSS of the run", [r.child_rss_mib for r in runs], " (MiB)")
        heaviest = max(_step_names(sizes), key=lambda step: runs[-1].step_rss_mib.get(step, 0))
        row(
            f"    sampled peak in {display(heaviest)}",
            [r.step_rss_mib.get(heaviest) for r in runs],
            " (MiB)",
        )
        row("  peak PSS of PostgreSQL backends", [r.postgres_mib for r in runs], " (MiB)")
    row("daily history reconciliation job", [s.history_seconds for s in sizes], " (s)")
    first, rerun = "first close", "no-op re-run"
    row(
        "no-op re-run / first close",
        [s.runs[rerun].seconds / s.runs[first].seconds for s in sizes],
    )
    check = "reported_usage_billing_api_reconciliation"
    for label in (first, rerun):
        row(
            f"reconciliation / {label}",
            [s.runs[label].steps.get(check, 0) / s.runs[label].seconds for s in sizes],
        )
    growth(sizes)


def growth(sizes: list[SizeFigures]) -> None:
    """Ratio of each time and memory figure to the smallest N, and its exponent k in N^k."""
    base = sizes[0]
    print(f"\ngrowth against {base.customers:,} customers: ratio (exponent k of N^k)")
    for size in sizes[1:]:
        scale = size.customers / base.customers
        print(f"\n{size.customers:,} customers = x{scale:.2f}")
        for label, run in size.runs.items():
            before = base.runs[label]
            pairs = [("whole run", before.seconds, run.seconds)]
            pairs += [
                (display(s), before.steps.get(s), run.steps.get(s)) for s in _step_names(sizes)
            ]
            pairs += [
                ("peak RSS of the run", before.child_rss_mib, run.child_rss_mib),
                ("peak PSS of PostgreSQL", before.postgres_mib, run.postgres_mib),
            ]
            for name, old, new in pairs:
                if old and new:
                    ratio = new / old
                    exponent = math.log(ratio) / math.log(scale)
                    print(f"  {label}: {name:<44} x{ratio:5.2f}  (k = {exponent:4.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--month", default=default_month(), help="YYYY-MM (default: last month)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"load average before: {os.getloadavg()}")
    print(f"month {args.month}, closed at {close_time(args.month).isoformat()}")
    sizes = [measure(n, args.month, args.seed) for n in sorted(args.customers)]
    print(f"load average after: {os.getloadavg()}")
    report(sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
