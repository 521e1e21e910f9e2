"""A `usage-billing materialize` SIGKILLed mid-run leaves a zombie STARTED run; it must end as
failed, so the month is retried and stops counting as in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.operations.conftest import Webhook, evaluate_retry_sensor
from tests.pipeline import NOW, Sandbox
from tests.reporting.test_exactly_once import load_month
from usage_assets import runs
from usage_assets.sensors import RETRY_OF_TAG
from usage_billing import cli

pytestmark = pytest.mark.adversarial

MONTH = "2025-03"
START_TIMEOUT_SECONDS = 120.0  # the child imports Dagster and prepares the instance first


def _run_of(instance: dg.DagsterInstance, pid: int) -> dg.DagsterRun | None:
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={runs.PID_TAG: str(pid)}), limit=1
    )
    return records[0].dagster_run if records else None


@pytest.fixture
def cli_environment(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """A month to report, and the settings a `usage-billing` process in this test runs with."""
    load_month(engine, MONTH, customers=20, days=19)
    sandbox.configure(latency_ms=1000)  # every batch takes a second: the run cannot finish first
    monkeypatch.setenv("METRONOME_BASE_URL", sandbox.url)
    monkeypatch.setenv("USAGE_BILLING_NOW", NOW.isoformat())
    yield {**os.environ, "USAGE_DATABASE_URL": database_url}


def _killed_mid_run(env: dict[str, str], instance: dg.DagsterInstance, log: Path) -> dg.DagsterRun:
    """Start `usage-billing materialize` in a child process, SIGKILL it once its run has started."""
    command = [sys.executable, "-m", "usage_billing.cli", "materialize", "--month", MONTH]
    with log.open("wb") as output:
        child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        waiting = threading.Event()
        for _ in range(int(START_TIMEOUT_SECONDS / 0.05)):
            run = _run_of(instance, child.pid)
            if (run and run.status == dg.DagsterRunStatus.STARTED) or child.poll() is not None:
                break
            waiting.wait(0.05)  # polling the instance for the child's run
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    zombie = instance.get_run_by_id(run.run_id)
    assert zombie.status == dg.DagsterRunStatus.STARTED  # nobody is left to end it
    assert zombie.tags["dagster/partition"] == MONTH
    return zombie


def test_killed_run_is_failed_by_the_next_materialize_and_the_month_is_retried(
    cli_environment: dict[str, str],
    database_url: str,
    dagster_instance: dg.DagsterInstance,
    webhook: Webhook,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zombie = _killed_mid_run(cli_environment, dagster_instance, tmp_path / "killed.log")

    monkeypatch.setenv("METRONOME_BEARER_TOKEN", "not-the-token")  # the next run fails (401)
    assert cli.main(["materialize", "--month", MONTH]) == 1
    out = capsys.readouterr().out
    assert f"run {zombie.run_id} for {MONTH}: marked FAILURE" in out
    failed_run_id = out.split("run ", 2)[2].split(" ", 1)[0]
    assert dagster_instance.get_run_by_id(zombie.run_id).status == dg.DagsterRunStatus.FAILURE
    assert dagster_instance.get_run_by_id(failed_run_id).status == dg.DagsterRunStatus.FAILURE

    [retry] = evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=5)
    assert retry.partition_key == MONTH
    assert retry.tags[RETRY_OF_TAG] == failed_run_id


def test_the_retry_sensor_fails_a_killed_run_and_retries_its_month(
    cli_environment: dict[str, str],
    database_url: str,
    dagster_instance: dg.DagsterInstance,
    webhook: Webhook,
    tmp_path: Path,
) -> None:
    zombie = _killed_mid_run(cli_environment, dagster_instance, tmp_path / "killed.log")

    [retry] = evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=5)
    assert dagster_instance.get_run_by_id(zombie.run_id).status == dg.DagsterRunStatus.FAILURE
    assert retry.partition_key == MONTH
    assert retry.tags[RETRY_OF_TAG] == zombie.run_id
    assert evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=6) == [
        retry
    ]  # the same run_key: Dagster launches it once


def test_runs_of_live_processes_and_of_other_hosts_are_left_alone(
    engine: sa.Engine, dagster_instance: dg.DagsterInstance
) -> None:
    from usage_assets.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()

    def started_run(tags: dict[str, str]) -> str:
        run = dagster_instance.create_run_for_job(
            job_def=job, tags=tags, status=dg.DagsterRunStatus.STARTED
        )
        return run.run_id

    mine = started_run(runs.process_tags())  # this test process: alive
    elsewhere = started_run({**runs.process_tags(), runs.HOST_TAG: "another-host"})
    reused_pid = started_run({**runs.process_tags(), runs.PROCESS_STARTED_TAG: "12.5"})
    untagged = started_run({})  # e.g. launched by the daemon: Dagster's run monitoring's

    assert [run.run_id for run in runs.fail_orphaned_runs(dagster_instance)] == [reused_pid]
    status = {
        run_id: dagster_instance.get_run_by_id(run_id).status
        for run_id in (mine, elsewhere, reused_pid, untagged)
    }
    assert status == {
        mine: dg.DagsterRunStatus.STARTED,
        elsewhere: dg.DagsterRunStatus.STARTED,
        reused_pid: dg.DagsterRunStatus.FAILURE,
        untagged: dg.DagsterRunStatus.STARTED,
    }
    assert runs.fail_orphaned_runs(dagster_instance) == []  # once
