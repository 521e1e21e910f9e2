"""The insight assets through Dagster: downstream of the usage, their own hourly job, metadata a
finance user reads, and one alert per spike incident through the alerts webhook."""

import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.insights.conftest import CLOCK, MONTH, Webhook, steady_events
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.insights import FORECAST, SPIKES, usage_insights
from usage_assets.definitions import defs
from usage_assets.insights_schedule import insights_hourly
from usage_billing import loader
from usage_billing.resources import AlertsResource, WarehouseResource

pytestmark = pytest.mark.integration


def materialize(
    database_url: str, webhook_url: str, keys: tuple = (FORECAST.key, SPIKES.key)
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [usage_insights],
        selection=list(keys),
        partition_key=MONTH,
        resources={
            "warehouse": WarehouseResource(database_url=database_url),
            "alerts": AlertsResource(webhook_url=webhook_url, timeout_seconds=1),
        },
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult, asset: dg.AssetKey) -> dict[str, object]:
    [materialization] = [
        m for m in result.asset_materializations_for_node("usage_insights") if m.asset_key == asset
    ]
    return {key: value.value for key, value in materialization.metadata.items()}


def busy_this_morning(customer: str) -> list[str]:
    """A customer with 240 events a day since January, and 2,000 by 01:00 today."""
    yesterday = CLOCK.date() - dt.timedelta(days=1)
    return [
        *steady_events(customer, dt.date(2025, 1, 20), yesterday, rows=24, value=10),
        *steady_events(customer, CLOCK.date(), CLOCK.date(), rows=200, value=10, hour=1),
    ]


def test_the_insights_sit_downstream_of_the_usage_and_refresh_hourly() -> None:
    dg.Definitions.validate_loadable(defs)  # what `dagster dev` checks: unique names among them
    graph = defs.resolve_asset_graph()
    usage_keys = {asset.key for asset in usage_assets}
    for key in (FORECAST.key, SPIKES.key):
        assert graph.get(key).parent_keys == usage_keys
        assert graph.get(key).partitions_def is not None
    job = defs.resolve_job_def("insights")
    assert set(job.asset_layer.executable_asset_keys) == {FORECAST.key, SPIKES.key}
    context = dg.build_schedule_context(scheduled_execution_time=CLOCK)
    assert insights_hourly(context).partition_key == MONTH
    assert "insights_hourly" in {s.name for s in defs.schedules}


@pytest.mark.usefixtures("clock")
def test_a_spike_alerts_once_and_the_forecast_reads_like_a_report(
    engine: sa.Engine, database_url: str, webhook: Webhook
) -> None:
    lines = [
        *steady_events("cust_calm", dt.date(2025, 1, 20), CLOCK.date(), rows=24, value=10),
        *busy_this_morning("cust_busy"),
        *steady_events("cust_old", dt.date(2025, 2, 1), dt.date(2025, 3, 10), rows=24, value=1),
        *steady_events("cust_old", dt.date(2025, 3, 11), dt.date(2025, 3, 11), rows=240, value=1),
    ]
    loader.load_lines(engine, lines, source="t")

    first_run = materialize(database_url, webhook.url)
    assert first_run.success
    spikes = metadata(first_run, SPIKES.key)
    assert spikes["spikes"] == 2  # today's and the 11th's
    assert spikes["alerts_sent"] == 1  # the 11th is history, not news
    [alert] = webhook.received
    assert "cust_busy" in alert["text"] and "2025-03-20" in alert["text"]
    assert "day under way" in alert["blocks"][0]["text"]["text"]
    assert "cust_busy" in spikes["latest_spikes"]

    forecast = metadata(first_run, FORECAST.key)
    assert forecast["customers"] == 3 and forecast["as_of"] == CLOCK.isoformat()
    assert "events_sent" in forecast["by_metric"] and "projected month end" in forecast["by_metric"]
    totals = forecast["totals"]["events_sent"]
    assert float(totals["month_to_date"]) < float(totals["projected"])

    second_run = materialize(database_url, webhook.url)
    assert second_run.success
    assert metadata(second_run, SPIKES.key)["alerts_sent"] == 0
    assert len(webhook.received) == 1  # once per incident


@pytest.mark.usefixtures("clock")
def test_an_alert_that_cannot_be_delivered_fails_the_run_and_is_sent_by_the_next(
    engine: sa.Engine, database_url: str, webhook: Webhook
) -> None:
    loader.load_lines(engine, busy_this_morning("cust_busy"), source="t")
    unreachable = "http://127.0.0.1:9/hooks/alerts"  # the discard port: nothing listens
    assert materialize(database_url, unreachable, (FORECAST.key,)).success  # no alerts in it
    failed = materialize(database_url, unreachable)
    assert not failed.success
    # the forecast was recorded before the alert failed; the spikes were not
    assert failed.asset_materializations_for_node("usage_insights")[0].asset_key == FORECAST.key
    assert len(failed.asset_materializations_for_node("usage_insights")) == 1
    assert materialize(database_url, webhook.url).success
    assert len(webhook.received) == 1
