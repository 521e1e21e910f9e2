"""A two-month backfill launched the way the Dagster UI launches it, end to end.

PostgreSQL (a fresh database) holds the raw metrics, the pipeline's tables and the Dagster instance;
the Metronome sandbox runs in this process; plain `dagster dev` (webserver and daemon) runs as a
child process on an instance configured the way Dagster's docs show. The pipeline clock and the
sandbox clock are pinned to the same instant (`tests.pipeline.NOW`), so the seeded data, the
backdating decisions and the totals are the same on every run.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from scripts.dagster_ui import Backfill, DagsterUi, running_dagster_dev
from tests.e2e.conftest import dagster_home, postgres_url_storage
from tests.pipeline import NOW, Sandbox, truth
from usage_billing import synthetic
from usage_billing.cli.demo import demo_months
from usage_billing.collectors import collectors

pytestmark = pytest.mark.e2e

MONTHS = tuple(demo_months(NOW))  # the pinned clock's previous and current month
CUSTOMERS = 4
SEED = 11
# A bound, not the expected time: with the in-process executor the two runs take about a minute
# on 2 loaded cores; the bound leaves room for a slow machine without hiding a hang.
BACKFILL_TIMEOUT_SECONDS = 360
BACKFILL_TAG = "usage_billing/e2e"
SENSOR_TICK_TIMEOUT_SECONDS = 120
SENSORS = {
    "retry_failed_partitions",
    "redrive_when_healthy",
    "late_raw_data",
    "alert_on_failed_checks",
    "deliver_alerts",
}


@pytest.fixture
def seeded(engine: sa.Engine, now: dt.datetime) -> sa.Engine:
    """Raw metrics of every product for both months, generated as of the pinned clock."""
    for month in MONTHS:
        result = synthetic.seed(engine, synthetic.plan(month, CUSTOMERS, SEED))
        assert result.loaded > 0 and result.quarantined == 0
    return engine


@pytest.fixture
def ui(
    billing_api_environment: Sandbox,
    seeded: sa.Engine,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[DagsterUi]:
    """Plain `dagster dev -w workspace.yaml` (webserver and daemon) on this test's database and
    sandbox, with a DAGSTER_HOME whose dagster.yaml says `postgres_url: postgresql://…` as
    Dagster's docs write it.

    The children inherit USAGE_DATABASE_URL, USAGE_BILLING_NOW (pinned like the sandbox's clock),
    METRONOME_BASE_URL / METRONOME_BEARER_TOKEN and DAGSTER_HOME.
    """
    home = dagster_home(tmp_path / "dagster_home", postgres_url_storage(database_url))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with running_dagster_dev(os.environ, tmp_path / "dagster-dev.log") as running:
        yield running


def expected_assets() -> list[list[str]]:
    """Every collector's aggregated usage, usage_events, reported_usage, the priced usage and the
    insights."""
    usage = [["aggregated_usage", name] for name in collectors()]
    priced = [["invoice_line_items"], ["invoice_totals"]]
    insights = [["insights", "usage_forecast"], ["insights", "usage_spikes"]]
    return sorted([*usage, ["usage_events"], ["reported_usage"], *priced, *insights])


def assert_backfill_succeeded(backfill: Backfill, ui: DagsterUi) -> None:
    """The backfill and each of its own runs succeeded, and its runs cover every month.

    Only runs tagged with this backfill count: schedules and sensors may launch others.
    """
    assert backfill.status == "COMPLETED_SUCCESS", (backfill, ui.log_tail())
    assert backfill.error is None
    assert sorted(backfill.partition_names) == sorted(MONTHS)
    assert backfill.runs, "the backfill launched no runs"
    covered = set()
    for run in backfill.runs:
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        assert run["status"] == "SUCCESS", (run["runId"], run["status"])
        assert tags["dagster/backfill"] == backfill.id
        assert tags[BACKFILL_TAG] == "1"
        covered.add(tags["dagster/partition"])
    assert covered == set(MONTHS)


@pytest.mark.timeout(540)  # the in-test deadlines (code location load, backfill) come first
def test_two_month_backfill_from_the_ui_reports_exact_totals(
    ui: DagsterUi, sandbox: Sandbox, seeded: sa.Engine
) -> None:
    assets = ui.partitioned_materializable_assets()
    assert assets == expected_assets()

    started = time.monotonic()
    backfill_id = ui.launch_backfill(MONTHS, assets, "e2e: two months", {BACKFILL_TAG: "1"})
    backfill = ui.wait_for_backfill(backfill_id, BACKFILL_TIMEOUT_SECONDS)
    print(f"backfill {backfill_id} of {MONTHS} finished in {time.monotonic() - started:.0f}s")

    assert_backfill_succeeded(backfill, ui)
    expected = truth(seeded)
    assert {metric for _, metric in expected} == set(collectors()), "a metric has no usage"
    assert sandbox.totals() == expected
    # Meanwhile the daemon ticked every sensor against this instance, none with an error.
    assert set(ui.wait_for_sensor_ticks(SENSOR_TICK_TIMEOUT_SECONDS)) == SENSORS
