"""The project deploys like any Dagster project: plain `dagster dev -w workspace.yaml` on a
`dagster.yaml` written with `postgres_db: {…}` as Dagster's docs show, and `usage-billing ui` on
the instance it generates. (The `postgres_url:` form runs the full UI backfill in
test_ui_backfill.py.)
"""

from __future__ import annotations

import datetime as dt
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from scripts.dagster_ui import DagsterUi, running_dagster_dev, usage_billing_ui
from tests.e2e.conftest import dagster_home, database_password, postgres_db_storage
from tests.helpers import sent
from tests.pipeline import NOW, Sandbox
from usage_billing import loader

pytestmark = pytest.mark.e2e

MONTH = NOW.strftime("%Y-%m")
SENSORS = {
    "retry_failed_partitions",
    "redrive_when_healthy",
    "late_raw_data",
    "alert_on_failed_checks",
    "deliver_alerts",
}
SENSOR_TICK_TIMEOUT_SECONDS = 120
RUN_TIMEOUT_SECONDS = 240
DAEMON_TIMEOUT_SECONDS = 120


def _aggregated(engine: sa.Engine, metric: str) -> Decimal:
    query = sa.text(
        "SELECT coalesce(sum(value), 0) FROM aggregated_usage WHERE billable_metric = :m"
    )
    with engine.connect() as conn:
        return conn.execute(query, {"m": metric}).scalar_one()


@pytest.mark.timeout(420)
def test_dagster_dev_on_a_postgres_db_instance_loads_ticks_sensors_and_runs(
    engine: sa.Engine,
    database_url: str,
    billing_api_environment: Sandbox,
    now: dt.datetime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [sent(f"e{n}", f"{MONTH}-0{n}T10:00:00+00:00", "2.5") for n in range(1, 5)]
    assert loader.load_lines(engine, lines, source="e2e").loaded == 4
    home = dagster_home(tmp_path / "dagster_home", postgres_db_storage(database_url))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", database_password(database_url))

    with running_dagster_dev(os.environ, tmp_path / "dagster-dev.log") as ui:
        assert set(ui.wait_for_sensor_ticks(SENSOR_TICK_TIMEOUT_SECONDS)) == SENSORS
        run_id = ui.launch_partition_run(MONTH, [["aggregated_usage", "events_sent"]])
        status = ui.wait_for_run(run_id, RUN_TIMEOUT_SECONDS)
        assert status == "SUCCESS", ui.log_tail()

    assert _aggregated(engine, "events_sent") == Decimal("10.0")


def _wait_for_healthy_daemons(ui: DagsterUi, daemons: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    statuses: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        statuses = ui.daemon_statuses()
        healthy = {status["daemonType"] for status in statuses if status["healthy"]}
        if daemons <= healthy:
            return
        time.sleep(1.0)
    raise ui.fail(f"daemons {sorted(daemons)} not all healthy within {timeout:.0f}s: {statuses}")


@pytest.mark.timeout(300)
def test_usage_billing_ui_loads_ticks_sensors_and_monitors_runs(
    engine: sa.Engine, billing_api_environment: Sandbox, now: dt.datetime, tmp_path: Path
) -> None:
    """`usage-billing ui` generates DAGSTER_HOME (the shipped dagster.yaml) and a workspace file,
    then runs `dagster dev`; run monitoring, which fails runs that never end, is among its
    daemons."""
    with running_dagster_dev(
        os.environ, tmp_path / "usage-billing-ui.log", command=usage_billing_ui
    ) as ui:
        assert set(ui.wait_for_sensor_ticks(SENSOR_TICK_TIMEOUT_SECONDS)) == SENSORS
        _wait_for_healthy_daemons(
            ui,
            {"SENSOR", "SCHEDULER", "BACKFILL", "QUEUED_RUN_COORDINATOR", "MONITORING"},
            DAEMON_TIMEOUT_SECONDS,
        )
