"""A reporting run killed mid-send, then re-run, ends exact; the token never reaches logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import dagster as dg
import pytest
import sqlalchemy as sa

from metronome_sandbox.server import running_sandbox
from metronome_sandbox.settings import SandboxSettings
from tests.pipeline import (
    NOW,
    Sandbox,
    aggregate,
    fast_api,
    outbox_status,
    run_month,
    truth,
)
from tests.reporting.test_exactly_once import load_month

pytestmark = pytest.mark.integration


def _acknowledged(engine: sa.Engine) -> int:
    return outbox_status(engine).get("acknowledged", 0)


def test_run_killed_mid_send_then_rerun_is_exact(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, tmp_path
) -> None:
    load_month(engine, "2025-03", customers=40, days=19)
    aggregate(database_url, "2025-03")
    total = 40 * 19
    sandbox.configure(latency_ms=400, lost_ack_rate=0.1)
    env = {
        **os.environ,
        "USAGE_DATABASE_URL": database_url,
        "METRONOME_BASE_URL": sandbox.url,
        "USAGE_BILLING_NOW": NOW.isoformat(),
        "USAGE_BILLING_HOME": str(tmp_path / "home"),
    }
    command = [sys.executable, "-m", "usage_billing.cli", "materialize", "--month", "2025-03"]
    child = subprocess.Popen(
        [*command, "--select", "key:reported_usage"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stop = threading.Event()
        while not sandbox.events() and child.poll() is None:
            stop.wait(0.02)  # polling the sandbox for the first accepted batch
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    delivered = len(sandbox.events())
    assert delivered > 0 and _acknowledged(engine) < total, "the kill must land mid-send"

    sandbox.configure(latency_ms=0, lost_ack_rate=0)
    assert run_month(database_url, fast_api(sandbox.url), "2025-03").success
    assert outbox_status(engine) == {"acknowledged": total}
    ids = [event["transaction_id"] for event in sandbox.events()]
    assert len(ids) == len(set(ids)) == total
    assert sandbox.totals() == truth(engine)


def test_the_token_never_appears_in_logs_or_run_records(
    engine: sa.Engine, database_url: str, now: object, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok-SECRET-5c1e2d"
    load_month(engine, "2025-03", customers=3, days=3)
    settings = SandboxSettings(port=0, database_url=database_url, now=NOW, token=token)
    with running_sandbox(settings) as url, dg.DagsterInstance.ephemeral() as instance:
        ok = run_month(database_url, fast_api(url, token=token), "2025-03", instance=instance)
        assert ok.success
        load_month(engine, "2025-03", customers=1, days=1, tag="late-")  # something to send
        denied = run_month(database_url, fast_api(url, token=token[:-1]), "2025-03")
        assert not denied.success
        records = [str(record) for record in instance.all_logs(ok.run_id)]
        assert records and not any(token in record for record in records)
        assert token not in str(instance.get_run_by_id(ok.run_id).run_config)
    assert token not in caplog.text
    failure = next(e for e in denied.all_events if e.is_step_failure)
    assert token[:-1] not in str(failure)
