"""The token never reaches logs or run records.

Runs killed mid-send are in tests/adversarial/test_kills.py.
"""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from metronome_sandbox.server import running_sandbox
from metronome_sandbox.settings import SandboxSettings
from tests.pipeline import NOW, fast_api, run_month
from tests.reporting.test_exactly_once import load_month

pytestmark = pytest.mark.integration


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
