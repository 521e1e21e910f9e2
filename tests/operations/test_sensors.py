"""Sensors evaluated against real run records in a Postgres-backed Dagster instance."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.helpers import sent
from tests.operations.conftest import Webhook, evaluate_retry_sensor
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.reported_usage import reported_usage
from usage_assets.assets.usage_events import usage_events
from usage_assets.sensors import ATTEMPT_TAG, RETRY_OF_TAG
from usage_billing import loader
from usage_billing.resources import BillingApiResource, WarehouseResource

pytestmark = pytest.mark.integration

UNREACHABLE = BillingApiResource(base_url="http://127.0.0.1:9", bearer_token="t", max_retries=0)


def _failing_run(
    database_url: str, instance: dg.DagsterInstance, month: str, tags: dict[str, str]
) -> dg.DagsterRun:
    """Run the month under Dagster's asset job, as a UI backfill does; reporting fails."""
    failing = dg.Definitions(
        assets=[*usage_assets, usage_events, reported_usage],
        resources={
            "warehouse": WarehouseResource(database_url=database_url),
            "billing_api": UNREACHABLE,
        },
    )
    job = failing.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        partition_key=month,
        asset_selection=[reported_usage.key],
        tags={"dagster/backfill": "bf-test", **tags},
        raise_on_error=False,
    )
    assert not result.success
    return instance.get_run_by_id(result.run_id)


@pytest.fixture
def loaded(engine: sa.Engine, database_url: str) -> None:
    loader.load_lines(engine, [sent("a", "2025-03-05T10:00:00+00:00", 3)], source="t")
    # reported_usage alone needs usage_events of the month
    result = dg.materialize(
        [*usage_assets, usage_events],
        partition_key="2025-03",
        resources={
            "warehouse": WarehouseResource(database_url=str(engine.url.render_as_string(False)))
        },
    )
    assert result.success


def test_failed_backfill_run_gets_exactly_one_retry_for_its_partition(
    loaded: None, database_url: str, dagster_instance: dg.DagsterInstance, webhook: Webhook
) -> None:
    run = _failing_run(database_url, dagster_instance, "2025-03", {})
    assert run.job_name == "__ASSET_JOB"
    [request] = evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=5)
    assert request.partition_key == "2025-03"
    assert request.asset_selection == [reported_usage.key]
    assert request.tags[ATTEMPT_TAG] == "1" and request.tags[RETRY_OF_TAG] == run.run_id
    assert request.run_key == f"retry-{run.run_id}-2025-03"  # Dagster launches a run_key once
    [again] = evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=6)
    assert again.run_key == request.run_key


def test_retry_waits_for_its_backoff(
    loaded: None, database_url: str, dagster_instance: dg.DagsterInstance, webhook: Webhook
) -> None:
    _failing_run(database_url, dagster_instance, "2025-03", {})
    assert evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=1) == []
    assert len(evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=3)) == 1


def test_the_cap_holds_and_alerts_once(
    loaded: None, database_url: str, dagster_instance: dg.DagsterInstance, webhook: Webhook
) -> None:
    _failing_run(database_url, dagster_instance, "2025-03", {ATTEMPT_TAG: "3", RETRY_OF_TAG: "r0"})
    assert evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=60) == []
    assert evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=61) == []
    [alert] = webhook.received
    assert "2025-03" in alert["text"] and "r0" in alert["text"]


def test_runs_dagster_retries_itself_are_skipped(
    loaded: None, database_url: str, dagster_instance: dg.DagsterInstance, webhook: Webhook
) -> None:
    _failing_run(database_url, dagster_instance, "2025-03", {"dagster/will_retry": "true"})
    assert evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=60) == []


def test_no_retry_once_the_partition_succeeded_later(
    loaded: None, database_url: str, dagster_instance: dg.DagsterInstance, webhook: Webhook
) -> None:
    _failing_run(database_url, dagster_instance, "2025-03", {})
    dg.materialize(
        [*usage_assets, usage_events],
        partition_key="2025-03",
        instance=dagster_instance,
        resources={"warehouse": WarehouseResource(database_url=database_url)},
    )
    assert evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=60) == []


def test_one_retry_sequence_per_partition_however_many_runs_failed(
    loaded: None,
    engine: sa.Engine,
    database_url: str,
    dagster_instance: dg.DagsterInstance,
    webhook: Webhook,
) -> None:
    _failing_run(database_url, dagster_instance, "2025-03", {})
    loader.load_lines(engine, [sent("late", "2025-03-06T10:00:00+00:00", 1)], source="late")
    dg.materialize(
        [*usage_assets, usage_events],
        partition_key="2025-03",
        resources={"warehouse": WarehouseResource(database_url=database_url)},
    )
    newest = _failing_run(database_url, dagster_instance, "2025-03", {})  # e.g. a late-data re-run
    [request] = evaluate_retry_sensor(dagster_instance, database_url, webhook, minutes_later=5)
    assert request.tags[RETRY_OF_TAG] == newest.run_id
