"""Alerts reach a local Slack-compatible receiver once per incident."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.helpers import sent, store_raw
from tests.operations.conftest import Webhook
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.usage_events import usage_events
from usage_assets.checks import invalid_values
from usage_assets.sensors import build_check_alert_sensor
from usage_billing import loader
from usage_billing.resources import AlertsResource, WarehouseResource

pytestmark = pytest.mark.integration


def _check_run(database_url: str, instance: dg.DagsterInstance) -> bool:
    result = dg.materialize(
        [*usage_assets, usage_events, invalid_values],
        partition_key="2025-03",
        instance=instance,
        resources={"warehouse": WarehouseResource(database_url=database_url)},
        raise_on_error=False,
    )
    return result.get_asset_check_evaluations()[0].passed


def test_failed_check_alerts_once_per_incident(
    engine: sa.Engine, database_url: str, dagster_instance: dg.DagsterInstance, webhook: Webhook
) -> None:
    sensor = build_check_alert_sensor([invalid_values.check_key])
    resources = {
        "warehouse": WarehouseResource(database_url=database_url),
        "alerts": AlertsResource(webhook_url=webhook.url),
    }

    def tick() -> None:
        sensor(dg.build_sensor_context(instance=dagster_instance, resources=resources))

    store_raw(engine, "neg", "2025-03-04T10:00:00+00:00", -2)  # the loader refuses it
    assert not _check_run(database_url, dagster_instance)
    tick()
    tick()
    [alert] = webhook.received  # once, however many ticks
    assert "usage_events / invalid_values" in alert["text"]
    assert "invalid_count: 1" in alert["text"]
    assert alert["blocks"][0]["type"] == "header"

    loader.load_lines(engine, [sent("fix", "2025-03-04T11:00:00+00:00", 5)], source="t")
    assert _check_run(database_url, dagster_instance)
    tick()  # resolved: the next failure is a new incident
    store_raw(engine, "neg2", "2025-03-04T12:00:00+00:00", -9)
    assert not _check_run(database_url, dagster_instance)
    tick()
    assert len(webhook.received) == 2


def test_alerts_without_a_webhook_only_log() -> None:
    assert AlertsResource().get_client().notify("title", ["line"]) is False
