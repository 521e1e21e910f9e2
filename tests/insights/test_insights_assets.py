"""The insight assets through Dagster: downstream of the priced usage in the month's job, metadata
a finance user reads, and alerts that leave the run: recorded by it, delivered once per incident
by the deliver_alerts sensor, so a webhook that fails never turns a month's run red."""

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.insights.conftest import CLOCK, MONTH, Webhook, steady_events
from tests.operations.conftest import deliver
from usage_assets.assets.insights import FORECAST, SPIKES, usage_insights
from usage_assets.assets.priced_usage import commit_burndown, invoice_totals
from usage_assets.definitions import defs
from usage_assets.jobs import usage_billing_job
from usage_assets.schedules import current_month_hourly
from usage_assets.sensors import deliver_alerts
from usage_billing import loader
from usage_billing.resources import AlertsResource, BillingApiResource, WarehouseResource

pytestmark = pytest.mark.integration

UNREACHABLE = "http://127.0.0.1:9/hooks/alerts"  # the discard port: nothing listens


def materialize(
    database_url: str, keys: tuple = (FORECAST.key, SPIKES.key)
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [usage_insights],
        selection=list(keys),
        partition_key=MONTH,
        resources={"warehouse": WarehouseResource(database_url=database_url)},
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult, asset: dg.AssetKey) -> dict[str, object]:
    [materialization] = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == asset
    ]
    return {key: value.value for key, value in materialization.metadata.items()}


def busy_this_morning(customer: str) -> list[str]:
    """A customer with 240 events a day since January, and 2,000 by 01:00 today."""
    yesterday = CLOCK.date() - dt.timedelta(days=1)
    return [
        *steady_events(customer, dt.date(2025, 1, 20), yesterday, rows=24, value=10),
        *steady_events(customer, CLOCK.date(), CLOCK.date(), rows=200, value=10, hour=1),
    ]


def test_the_insights_follow_the_priced_usage_in_the_current_months_run() -> None:
    dg.Definitions.validate_loadable(defs)  # what `dagster dev` checks: unique names among them
    graph = defs.resolve_asset_graph()
    for key in (FORECAST.key, SPIKES.key):
        assert graph.get(key).parent_keys == {invoice_totals.key}
        assert graph.get(key).partitions_def is not None
    assert graph.get(commit_burndown.key).parent_keys == {invoice_totals.key}
    job = defs.resolve_job_def(usage_billing_job.name)
    assert {FORECAST.key, SPIKES.key, commit_burndown.key} <= set(
        job.asset_layer.executable_asset_keys
    )
    assert defs.resolve_schedule_def(current_month_hourly.name).job_name == job.name
    assert "insights" not in {j.name for j in defs.jobs or []}  # no job of their own any more
    sensor = defs.resolve_sensor_def(deliver_alerts.name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


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

    first_run = materialize(database_url)
    assert first_run.success
    spikes = metadata(first_run, SPIKES.key)
    assert spikes["spikes"] == 2  # today's and the 11th's
    assert spikes["alerts_due"] == 1  # the 11th is history, not news
    assert "cust_busy" in spikes["latest_spikes"]
    assert webhook.received == []  # the run records the alert; the sensor sends it
    assert deliver(database_url, webhook.url) == "delivered 1 alerts"
    [alert] = webhook.received
    assert "cust_busy" in alert["text"] and "2025-03-20" in alert["text"]
    assert "day under way" in alert["blocks"][0]["text"]["text"]

    forecast = metadata(first_run, FORECAST.key)
    assert forecast["customers"] == 3 and forecast["as_of"] == CLOCK.isoformat()
    assert "events_sent" in forecast["by_metric"] and "projected month end" in forecast["by_metric"]
    totals = forecast["totals"]["events_sent"]
    assert float(totals["month_to_date"]) < float(totals["projected"])
    # Each stays in the first million events of the month: free, so the invoices project to 0.
    assert totals["projected_amount"] == "0.00"
    assert forecast["projected_invoices_total"].startswith("USD 0.00 (80 % range 0.00 to ")
    assert "cust_busy" in forecast["largest_projected_invoices"]

    second_run = materialize(database_url)
    assert second_run.success
    assert metadata(second_run, SPIKES.key)["alerts_due"] == 0
    assert deliver(database_url, webhook.url) == "no alerts due"
    assert len(webhook.received) == 1  # once per incident


@pytest.mark.usefixtures("clock")
def test_an_alert_the_webhook_refuses_fails_the_sensor_tick_not_the_run_and_goes_later(
    engine: sa.Engine, database_url: str, webhook: Webhook
) -> None:
    loader.load_lines(engine, busy_this_morning("cust_busy"), source="t")
    assert materialize(database_url).success  # no webhook in a run at all
    with pytest.raises(Exception, match="alert webhook unreachable"):
        deliver(database_url, UNREACHABLE)
    with pytest.raises(Exception, match="alert webhook unreachable"):
        deliver(database_url, UNREACHABLE)  # still due: the next tick tries again
    assert deliver(database_url, webhook.url) == "delivered 1 alerts"
    assert deliver(database_url, webhook.url) == "no alerts due"
    assert len(webhook.received) == 1


def _job_defs(database_url: str, api: BillingApiResource, webhook_url: str) -> dg.Definitions:
    """The code location's assets, checks and month job, with this test's resources."""
    return dg.Definitions(
        executor=dg.in_process_executor,
        assets=list(defs.assets or []),
        asset_checks=list(defs.asset_checks or []),
        jobs=[usage_billing_job],
        resources={
            "warehouse": WarehouseResource(database_url=database_url),
            "billing_api": api,
            "alerts": AlertsResource(webhook_url=webhook_url, timeout_seconds=1),
        },
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    events = result.get_asset_materialization_events()
    return {event.materialization.asset_key.to_user_string() for event in events}


def _contracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, customers: Iterable[str]) -> None:
    path = tmp_path / "contracts.yaml"
    commits = "".join(
        f'  - customer_id: {c}\n    commit: {{amount: "1.00", starts_on: "2025-03-01", '
        f'ends_before: "2025-04-01"}}\n'
        for c in customers
    )
    path.write_text("contracts:\n" + commits)
    monkeypatch.setenv("USAGE_CONTRACTS", str(path))


def test_the_months_run_is_green_when_its_alerts_cannot_be_delivered(
    engine: sa.Engine,
    database_url: str,
    api: BillingApiResource,
    webhook: Webhook,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The clock of `api` (the `now` fixture): March 20th, 12:00. A spike this morning, and a
    # commit of 1.00 that 2,000,000 events a day have run through by the 20th.
    today = dt.date(2025, 3, 20)
    lines = [
        *steady_events("cust_busy", dt.date(2025, 1, 20), today - dt.timedelta(days=1), 24, 10),
        *steady_events("cust_busy", today, today, rows=200, value=10, hour=1),
        *steady_events("cust_big", dt.date(2025, 3, 1), today - dt.timedelta(days=1), 2, 10**6),
    ]
    loader.load_lines(engine, lines, source="t")
    _contracts(tmp_path, monkeypatch, ["cust_big"])

    job = _job_defs(database_url, api, UNREACHABLE).resolve_job_def(usage_billing_job.name)
    run = job.execute_in_process(partition_key=MONTH, raise_on_error=False)
    assert run.success  # delivered and priced: green, whatever the webhook does
    assert {
        "reported_usage", "invoice_totals", "insights/usage_forecast", "insights/usage_spikes",
        "commit_burndown",
    } <= _materialized(run)  # fmt: skip
    with engine.connect() as conn:
        due = conn.execute(
            sa.text("SELECT incident_key FROM alert_incidents WHERE notified_at IS NULL")
        ).scalars()
        assert sorted(due) == [
            "commit-exhausted:cust_big:2025-03-01",
            "usage_spike:cust_busy:events_sent:2025-03-20",
        ]
    with pytest.raises(Exception, match="alert webhook unreachable"):
        deliver(database_url, UNREACHABLE)
    assert deliver(database_url, webhook.url) == "delivered 2 alerts"
    # 38,000,000 events by the 19th: 37,000,000 past the free million at $10 a million.
    assert sorted(a["blocks"][0]["text"]["text"] for a in webhook.received) == [
        "Commit of cust_big has run out: consumed 370.00 of 1.00",
        "Usage spike: cust_busy events_sent on 2025-03-20 (day under way)",
    ]


def test_a_settled_month_is_not_read_again(
    engine: sa.Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restatement sweep re-runs closed months daily for up to 120 days: their insights have
    nothing left to tell once the month is over, settled and out of the alert window."""
    lines = steady_events("cust_busy", dt.date(2025, 1, 20), dt.date(2025, 3, 31), 24, 10)
    loader.load_lines(engine, lines, source="t")
    monkeypatch.setenv("USAGE_BILLING_NOW", "2025-04-02T09:00:00+00:00")  # the close's alerts
    fresh = metadata(materialize(database_url), FORECAST.key)
    assert "settled_at" not in fresh and fresh["forecasts"] == 1
    monkeypatch.setenv("USAGE_BILLING_NOW", "2025-04-04T00:00:00+00:00")
    settled = metadata(materialize(database_url), FORECAST.key)
    assert settled == {"settled_at": "2025-04-04T00:00:00+00:00"}
