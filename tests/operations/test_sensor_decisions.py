"""The sensors' decisions, as plain functions: no database, no Dagster instance."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import psutil
import pytest

from tests.helpers import at
from usage_assets import runs
from usage_assets.sensors import (
    ATTEMPT_TAG,
    BACKOFF,
    MAX_ATTEMPTS,
    RETRY_OF_TAG,
    Arrival,
    CheckState,
    FailedRun,
    PartitionRuns,
    check_incidents,
    is_snapshot_cursor,
    late_data_requests,
    plan_retries,
    run_partitions,
)

pytestmark = pytest.mark.unit

ENDED = at("2025-03-10 12:00")
REPORTING = (dg.AssetKey("reported_usage"),)


def failed(run_id: str, *partitions: str, **fields: object) -> FailedRun:
    return FailedRun(run_id=run_id, ended_at=ENDED, partitions=partitions, **fields)


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(MAX_ATTEMPTS))
def test_each_retry_waits_its_backoff(attempt: int) -> None:
    run = failed("r", "2025-03", attempt=attempt, root="r0" if attempt else "")
    due = ENDED + BACKOFF[attempt]
    assert plan_retries([run], {}, due - dt.timedelta(seconds=1)).requests == []
    [request] = plan_retries([run], {}, due).requests
    assert request.partition_key == "2025-03"
    assert request.run_key == "retry-r-2025-03"
    assert request.tags == {ATTEMPT_TAG: str(attempt + 1), RETRY_OF_TAG: "r0" if attempt else "r"}


def test_the_retry_reruns_what_the_failed_run_selected() -> None:
    later = ENDED + dt.timedelta(hours=1)
    [selected] = plan_retries([failed("r", "2025-03", selection=REPORTING)], {}, later).requests
    assert selected.asset_selection == list(REPORTING)
    [whole] = plan_retries([failed("r", "2025-03")], {}, later).requests
    assert whole.asset_selection is None  # the whole job


def test_after_the_last_attempt_the_partition_is_exhausted_not_retried() -> None:
    run = failed("r3", "2025-03", attempt=MAX_ATTEMPTS, root="r0")
    plan = plan_retries([run], {}, ENDED + dt.timedelta(days=1))
    assert plan.requests == []
    [exhausted] = plan.exhausted
    assert exhausted.incident == "retries-exhausted:2025-03"
    assert (exhausted.run_id, exhausted.attempts) == ("r3", MAX_ATTEMPTS)


def test_only_the_newest_failure_of_a_partition_counts() -> None:
    newest = failed("new", "2025-03", attempt=0)
    older = failed("old", "2025-03", attempt=MAX_ATTEMPTS)  # exhausted, but superseded
    plan = plan_retries([newest, older], {}, ENDED + dt.timedelta(hours=1))
    assert [r.run_key for r in plan.requests] == ["retry-new-2025-03"]
    assert plan.exhausted == []


def test_a_range_failure_retries_each_month_once() -> None:
    ranged = failed("range", "2025-01", "2025-02")
    single = failed("single", "2025-02")  # older
    requests = plan_retries([ranged, single], {}, ENDED + dt.timedelta(hours=1)).requests
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("2025-01", "retry-range-2025-01"),
        ("2025-02", "retry-range-2025-02"),
    ]


def test_no_retry_while_the_partition_runs_or_after_it_succeeded() -> None:
    run = failed("r", "2025-03")
    later = ENDED + dt.timedelta(hours=1)
    running = {"2025-03": PartitionRuns(in_flight=True)}
    succeeded = {"2025-03": PartitionRuns(last_success_created=ENDED + dt.timedelta(minutes=1))}
    succeeded_before = {"2025-03": PartitionRuns(last_success_created=ENDED - dt.timedelta(days=1))}
    assert plan_retries([run], running, later).requests == []
    assert plan_retries([run], succeeded, later).requests == []
    assert len(plan_retries([run], succeeded_before, later).requests) == 1
    assert plan_retries([run], succeeded, later).recovered == ["2025-03"]
    assert plan_retries([run], succeeded_before, later).recovered == []


def test_a_month_failing_every_hour_is_one_incident_until_it_succeeds() -> None:
    """An hourly schedule starts a new retry sequence every hour; the alert must not repeat."""
    this_hour = failed("r3-b", "2025-03", attempt=MAX_ATTEMPTS, root="b")
    last_hour = failed("r3-a", "2025-03", attempt=MAX_ATTEMPTS, root="a")
    later = ENDED + dt.timedelta(days=1)
    incidents = {
        e.incident
        for run in (this_hour, last_hour)
        for e in plan_retries([run], {}, later).exhausted
    }
    assert incidents == {"retries-exhausted:2025-03"}


def test_runs_dagster_retries_itself_start_no_second_sequence() -> None:
    newest = failed("dagster-retries-me", "2025-03", dagster_retries=True)
    older = failed("old", "2025-03")
    assert plan_retries([newest, older], {}, ENDED + dt.timedelta(days=1)).requests == []


@pytest.mark.parametrize(
    ("tags", "partitions"),
    [
        ({"dagster/partition": "2025-02"}, ("2025-02",)),
        (
            {
                "dagster/asset_partition_range_start": "2025-01",
                "dagster/asset_partition_range_end": "2025-03",
            },
            ("2025-01", "2025-02", "2025-03"),
        ),
        ({}, ()),  # not partitioned: nothing to retry per month
    ],
)
def test_the_partitions_a_run_covered(tags: dict[str, str], partitions: tuple[str, ...]) -> None:
    keys = ["2025-01", "2025-02", "2025-03", "2025-04"]
    assert run_partitions(tags, keys) == partitions


# --- late data -----------------------------------------------------------------------------------


def test_late_rows_rerun_reported_months_only() -> None:
    arrivals = [
        Arrival("2025-01", rows=3, last_xid="900"),  # reported
        Arrival("2025-02", rows=1, last_xid="905"),  # never reported: the schedules run it
        Arrival("2031-01", rows=1, last_xid="906"),  # reported?! but no such partition yet
    ]
    [request] = late_data_requests(
        arrivals, reported={"2025-01", "2031-01"}, partitions={"2025-01", "2025-02"}
    )
    assert request.partition_key == "2025-01"
    assert request.run_key == "late-2025-01-900"
    assert request.tags == {"usage_billing/trigger": "late_data", "usage_billing/late_rows": "3"}


def test_each_arrival_of_a_month_has_its_own_run_key() -> None:
    first = late_data_requests([Arrival("2025-01", 1, "910")], {"2025-01"}, {"2025-01"})
    second = late_data_requests([Arrival("2025-01", 1, "905")], {"2025-01"}, {"2025-01"})
    assert first[0].run_key != second[0].run_key


@pytest.mark.parametrize(
    ("cursor", "snapshot"),
    [
        ("100:104:100,102", True),
        ("100:100:", True),
        ("2025-03-20T12:00:00+00:00", False),  # written by the received_at version
        ("100:104", False),
    ],
)
def test_snapshot_cursors_are_told_from_legacy_ones(cursor: str, snapshot: bool) -> None:
    assert is_snapshot_cursor(cursor) is snapshot


# --- alerts --------------------------------------------------------------------------------------

CHECK = dg.AssetCheckKey(dg.AssetKey("usage_events"), "invalid_values")


def test_a_failed_check_opens_its_incident_with_the_counts_that_matter() -> None:
    state = CheckState(
        CHECK, "FAILED", "run-1", {"invalid_count": 2, "unknown_count": 0, "problems": []}
    )
    changes = check_incidents([state])
    assert changes.resolve == []
    [incident] = changes.open
    assert incident.key == "check:usage_events:invalid_values"
    assert incident.title == "Usage billing check failed: usage_events / invalid_values"
    assert incident.lines == ["run: run-1", "invalid_count: 2"]


def test_a_passing_check_resolves_and_a_running_one_changes_nothing() -> None:
    passing = check_incidents([CheckState(CHECK, "SUCCEEDED", "run-2")])
    assert (passing.open, passing.resolve) == ([], ["check:usage_events:invalid_values"])
    running = check_incidents([CheckState(CHECK, "PLANNED", "run-3")])
    assert (running.open, running.resolve) == ([], [])


# --- zombie runs ---------------------------------------------------------------------------------


def _tags(host: str = "h1", pid: str = "42", started: str = "1000.5") -> dict[str, str]:
    return {runs.HOST_TAG: host, runs.PID_TAG: pid, runs.PROCESS_STARTED_TAG: started}


def test_a_run_is_orphaned_when_its_process_on_this_host_is_gone() -> None:
    def alive(pid: int, started: float) -> bool:
        return (pid, started) == (42, 1000.5)

    assert not runs.is_orphan(_tags(), "h1", alive)
    assert runs.is_orphan(_tags(pid="43"), "h1", alive)
    assert runs.is_orphan(_tags(started="2000.0"), "h1", alive)  # the pid was reused
    assert not runs.is_orphan(_tags(pid="43"), "h2", alive)  # another host's: cannot tell
    assert not runs.is_orphan({}, "h1", alive)  # not a CLI run
    assert not runs.is_orphan(_tags(pid="forty-two"), "h1", alive)


def test_process_alive_knows_live_dead_and_reused_pids() -> None:
    me = runs.process_tags()
    assert me[runs.HOST_TAG] == runs.host_name()
    assert runs.process_alive(os.getpid(), float(me[runs.PROCESS_STARTED_TAG]))
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        started = psutil.Process(child.pid).create_time()
        assert runs.process_alive(child.pid, started)
        assert not runs.process_alive(child.pid, started - 3600)  # the pid, another process
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, left unreaped
    finally:
        child.stdin.close()
    assert not runs.process_alive(child.pid, started)  # killed, not reaped yet: a zombie
    child.wait()
    assert not runs.process_alive(child.pid, started)  # gone
