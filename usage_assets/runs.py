"""Run bookkeeping: runs the CLI executes in its own process carry that process's identity, so a
run whose process died (SIGKILL, OOM, a lost terminal) can be told from one still running and be
marked failed instead of staying STARTED forever.

Why: a STARTED run counts as in flight. The retry sensor never retries a month that is in flight,
and the `dagster/partition` concurrency limit queues every later run of that month behind it.
Runs the daemon launches are covered by Dagster itself: the code server marks a run failed when its
worker process dies, and run monitoring (`dagster.yaml`) fails runs that outlive a maximum runtime.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping

import dagster as dg
import psutil

HOST_TAG = "usage_billing/host"
PID_TAG = "usage_billing/pid"
PROCESS_STARTED_TAG = "usage_billing/process_started"
# Two readings of one process's start time can differ by clock-tick rounding and boot-time
# adjustments; a pid reused within this margin of the first process's start is not a real risk.
SAME_PROCESS_SECONDS = 1.0
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

# Whether the process with this pid, started at this time (seconds since the epoch), still lives.
ProcessProbe = Callable[[int, float], bool]


def process_alive(pid: int, started: float) -> bool:
    """The process `pid` that started at `started` still runs (a zombie does not; a newer process
    that reused the pid is another process)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(process.create_time() - started) <= SAME_PROCESS_SECONDS
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's live process: never ours to judge dead


def host_name() -> str:
    return socket.gethostname()


def process_tags() -> dict[str, str]:
    """Tags naming this process (host, pid and start time, against pid reuse) for its runs."""
    me = psutil.Process()
    return {
        HOST_TAG: host_name(),
        PID_TAG: str(me.pid),
        PROCESS_STARTED_TAG: repr(me.create_time()),
    }


def is_orphan(tags: Mapping[str, str], host: str, alive: ProcessProbe = process_alive) -> bool:
    """True when the tags name a process on `host` that is gone. Runs without the tags, or of
    another host, cannot be judged here: False."""
    if tags.get(HOST_TAG) != host:
        return False
    try:
        pid, started = int(tags[PID_TAG]), float(tags[PROCESS_STARTED_TAG])
    except (KeyError, ValueError):
        return False
    return not alive(pid, started)


def fail_orphaned_runs(
    instance: dg.DagsterInstance, alive: ProcessProbe = process_alive
) -> list[dg.DagsterRun]:
    """Mark failed every unfinished run whose executing process on this host has died; the runs
    so marked. A run that finished meanwhile is left alone."""
    host = host_name()
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=UNFINISHED, tags={HOST_TAG: host})
    )
    failed = []
    for record in records:
        run = record.dagster_run
        if not is_orphan(run.tags, host, alive):
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.is_finished:
            continue
        instance.report_run_failed(
            current,
            f"The process that ran this run (pid {run.tags[PID_TAG]} on {host}) is gone: it was "
            "killed before the run could finish. Marked failed so the partition can be retried.",
        )
        failed.append(current)
    return failed
