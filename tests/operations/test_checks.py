"""Each check fails on a constructed gap, says which customers, metrics and days, and passes on a
clean run."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from metronome_sandbox.settings import DEV_TOKEN
from tests.helpers import sent, store_raw
from tests.pipeline import NOW, Sandbox, aggregate, run_month
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.reported_usage import reported_usage
from usage_assets.assets.usage_events import usage_events
from usage_assets.checks import (
    billing_api_reconciliation,
    build_raw_data_gap_check,
    invalid_values,
    reporting_gaps,
)
from usage_assets.definitions import defs
from usage_billing import loader, reconcile
from usage_billing.billing_api import BillingApiClient
from usage_billing.collectors import collectors
from usage_billing.resources import BillingApiResource, WarehouseResource

pytestmark = pytest.mark.integration


def _load(engine: sa.Engine, *lines: str) -> None:
    assert loader.load_lines(engine, lines, source="t").quarantined == 0


def _gaps(database_url: str) -> dg.AssetCheckResult:
    return reporting_gaps(warehouse=WarehouseResource(database_url=database_url))


def _json(result: dg.AssetCheckResult, name: str) -> list[dict]:
    return result.metadata[name].value


def test_reporting_gaps_pass_after_a_clean_run_and_list_dead_letters(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    _load(
        engine,
        sent("a", "2025-02-20T10:00:00+00:00", 4),
        sent("b", "2025-02-21T10:00:00+00:00", 5, customer_id="cust_x"),
    )
    assert run_month(database_url, api, "2025-02").success
    assert _gaps(database_url).passed

    _load(engine, sent("c", "2025-02-22T10:00:00+00:00", 1, customer_id="cust_x"))
    sandbox.configure(reject_customer_ids=["cust_x"])
    assert not run_month(database_url, api, "2025-02").success
    result = _gaps(database_url)
    assert not result.passed
    [letter] = _json(result, "dead_letters")
    assert (letter["customer_id"], letter["event_type"]) == ("cust_x", "events_sent")
    assert letter["window_start"].startswith("2025-02-22")
    [outstanding] = _json(result, "unacknowledged")
    assert outstanding == {
        "metric": "events_sent",
        "customer_id": "cust_x",
        "day": "2025-02-22",
        "outstanding": "1",
    }


def test_reporting_gaps_find_unreported_truth_and_months_never_reported(
    engine: sa.Engine, database_url: str, now: object
) -> None:
    # NOW is 2025-03-20: January and February are closed. January has data, never reported.
    _load(
        engine,
        sent("jan", "2025-01-15T10:00:00+00:00", 2),
        sent("feb", "2025-02-03T10:00:00+00:00", 3),
    )
    aggregate(database_url, "2025-02")
    result = _gaps(database_url)
    assert not result.passed
    assert _json(result, "months_never_reported") == [
        {"month": "2025-01", "problem": "raw metrics but nothing reported"},
        {"month": "2025-02", "problem": "raw metrics but nothing reported"},
    ]
    assert _json(result, "unreported") == [
        {"metric": "events_sent", "customer_id": "cust_a", "day": "2025-02-03", "unreported": "3"}
    ]


def _ingest(sandbox: Sandbox, *events: dict) -> None:
    """Events someone else sent straight to the billing API."""
    headers = {"Authorization": f"Bearer {DEV_TOKEN}"}
    httpx.post(f"{sandbox.url}/v1/ingest", json=list(events), headers=headers).raise_for_status()


def _set_clock(sandbox: Sandbox, when: str) -> None:
    response = httpx.post(
        f"{sandbox.url}/sandbox/clock", json={"now": when}, headers=sandbox.headers
    )
    response.raise_for_status()


def _stray(
    name: str, timestamp: str, value: str, metric: str = "events_sent", **properties: str
) -> dict:
    return {
        "transaction_id": f"sent-by-someone-else-{name}",
        "customer_id": properties.pop("customer_id", "cust_a"),
        "event_type": metric,
        "timestamp": timestamp,
        "properties": {metric: value, **properties},
    }


def _reconcile_month(database_url: str, api: BillingApiResource, month: str):
    result = dg.materialize(
        [*usage_assets, usage_events, reported_usage, billing_api_reconciliation],
        partition_key=month,
        resources={"warehouse": WarehouseResource(database_url=database_url), "billing_api": api},
    )
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_reconciliation_catches_usage_the_ledger_does_not_know(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    _load(
        engine,
        sent("a", "2025-03-02T10:00:00+00:00", "2.5"),
        sent("b", "2025-03-02T11:00:00+00:00", "4", customer_id="cust_b"),
    )
    evaluation = _reconcile_month(database_url, api, "2025-03")
    assert evaluation.passed and evaluation.metadata["compared"].value == 2

    # One customer and one metric the ledger does not know: another metric, another customer
    # and the same customer's other metric stay quiet.
    _ingest(sandbox, _stray("x", "2025-03-03T00:00:00Z", "1"))
    evaluation = _reconcile_month(database_url, api, "2025-03")
    assert not evaluation.passed
    assert evaluation.metadata["mismatches"].value == [
        {
            "month": "2025-03",
            "customer_id": "cust_a",
            "metric": "events_sent",
            "ledger": "2.5",
            "billing_api": "3.5",
        }
    ]
    # Outside a partition's run the check compares the current month (NOW is in March).
    context = dg.build_asset_check_context()
    warehouse = WarehouseResource(database_url=database_url)
    direct = billing_api_reconciliation(context, warehouse=warehouse, billing_api=api)
    assert direct.metadata["mismatches"].value == evaluation.metadata["mismatches"].value


def test_month_reconciliation_counts_corrections_for_the_window_they_correct(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    # NOW is 2025-03-20 12:00: February 3 is past the 34-day backdating limit, so its usage goes
    # out dated now, with corrects_window; February 25 is still on time.
    _load(
        engine,
        sent("old", "2025-02-03T10:00:00+00:00", 7),
        sent("recent", "2025-02-25T10:00:00+00:00", 5),
        sent("march", "2025-03-02T10:00:00+00:00", 1),
    )
    assert _reconcile_month(database_url, api, "2025-02").passed
    assert _reconcile_month(database_url, api, "2025-03").passed
    correction = next(e for e in sandbox.events() if "corrects_window" in e["properties"])
    assert correction["timestamp"] == "2025-03-20T12:00:00Z"

    # A correction of February that the ledger never sent, dated in March: February's check
    # names it, March's still agrees (the correction is not March's usage).
    stray = _stray("fix", "2025-03-19T00:00:00Z", "-2", corrects_window="2025-02-03T00:00:00Z")
    _ingest(sandbox, stray)
    february = _reconcile_month(database_url, api, "2025-02")
    assert february.metadata["mismatches"].value == [
        {
            "month": "2025-02",
            "customer_id": "cust_a",
            "metric": "events_sent",
            "ledger": "12",
            "billing_api": "10",
        }
    ]
    assert _reconcile_month(database_url, api, "2025-03").passed


def _report_february_and_march(
    engine: sa.Engine, database_url: str, api: BillingApiResource, *lines: str
) -> None:
    """cust_a: 7 events_sent on February 3 (a correction by now), 1 on March 2; and `lines`."""
    _load(
        engine,
        sent("old", "2025-02-03T10:00:00+00:00", 7),
        sent("march", "2025-03-02T10:00:00+00:00", 1),
        *lines,
    )
    assert run_month(database_url, api, "2025-02").success
    assert run_month(database_url, api, "2025-03").success


class RecordingClient:
    """The real client, remembering each /v1/usage query (range, grouped or not)."""

    def __init__(self, client: BillingApiClient) -> None:
        self.client = client
        self.queries: list[tuple[str, str, bool]] = []

    def usage(self, starting_on: str, ending_before: str, billable_metrics=None, **kw: Any):
        self.queries.append((starting_on, ending_before, billable_metrics is not None))
        return self.client.usage(starting_on, ending_before, billable_metrics, **kw)


def test_a_month_costs_one_grouped_query_plus_one_for_later_corrections(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource, now: Any
) -> None:
    more = (
        sent(f"c{n}", "2025-03-03T10:00:00+00:00", 1, customer_id=f"c{n:03}") for n in range(150)
    )
    _report_february_and_march(engine, database_url, api, *more)
    client = RecordingClient(api.get_client())
    # The current month: its windows cannot have corrections yet. The probe for the metrics' ids
    # stops after its first page of 100 rows, though the answer has 151 customers.
    found, compared = reconcile.mismatches(engine, client, ["2025-03"], now)
    assert (found, compared) == ([], 151)
    assert client.queries == [
        ("2025-03-01T00:00:00Z", "2025-03-21T00:00:00Z", False),
        ("2025-03-01T00:00:00Z", "2025-03-21T00:00:00Z", True),
    ]
    # A closed month past the backdating limit: its own days, then the days from the first on
    # which a correction of its windows can be dated (Feb 1 + 34 days - 1 hour) to tomorrow.
    client.queries.clear()
    assert reconcile.mismatches(engine, client, ["2025-02"], now) == ([], 1)
    assert client.queries == [
        ("2025-02-01T00:00:00Z", "2025-03-21T00:00:00Z", False),
        ("2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z", True),
        ("2025-03-06T00:00:00Z", "2025-03-21T00:00:00Z", True),
    ]


def test_history_reconciliation_compares_every_month_in_its_own_job(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    _report_february_and_march(engine, database_url, api)
    resources = {"warehouse": WarehouseResource(database_url=database_url), "billing_api": api}

    def history() -> dg.AssetCheckEvaluation:
        job = defs.resolve_job_def("billing_api_history_reconciliation")
        result = job.execute_in_process(resources=resources)
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.check_name == "billing_api_history_reconciliation"
        return evaluation

    evaluation = history()
    assert evaluation.passed and evaluation.metadata["compared"].value == 2
    # Usage of a month never reported (sent while the API's clock allowed it), and a correction
    # of February dated March 2: earlier than reporting can date one, so February's own check
    # does not look there; the history does.
    january = _stray("jan", "2025-01-20T00:00:00Z", "3", "fin_resolutions", customer_id="cust_b")
    _set_clock(sandbox, "2025-02-01T00:00:00Z")
    _ingest(sandbox, january)
    _set_clock(sandbox, NOW.isoformat())
    _ingest(
        sandbox,
        _stray("early-fix", "2025-03-02T00:00:00Z", "-1", corrects_window="2025-02-03T00:00:00Z"),
    )
    assert history().metadata["mismatches"].value == [
        {
            "month": "2025-01",
            "customer_id": "cust_b",
            "metric": "fin_resolutions",
            "ledger": "0",
            "billing_api": "3",
        },
        {
            "month": "2025-02",
            "customer_id": "cust_a",
            "metric": "events_sent",
            "ledger": "7",
            "billing_api": "6",
        },
    ]


def test_history_reconciliation_never_runs_inside_a_partition_run() -> None:
    def checks(job: dg.JobDefinition) -> set[str]:
        return {key.name for key in job.asset_layer.asset_graph.asset_check_keys}

    graph = defs.resolve_asset_graph()
    everything = dg.AssetSelection.all().resolve(graph) & graph.materializable_asset_keys
    as_the_cli_runs = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=everything
    )
    for job in (defs.resolve_job_def("usage_billing"), as_the_cli_runs):
        assert "billing_api_reconciliation" in checks(job)
        assert "billing_api_history_reconciliation" not in checks(job)
    history = defs.resolve_job_def("billing_api_history_reconciliation")
    assert checks(history) == {"billing_api_history_reconciliation"}
    daily = defs.resolve_schedule_def("history_reconciliation_daily")
    assert (daily.job_name, daily.cron_schedule) == (history.name, "0 5 * * *")


def test_invalid_values_block_the_send_in_the_same_run(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    _load(engine, sent("ok", "2025-03-02T10:00:00+00:00", 5))
    store_raw(engine, "neg", "2025-03-04T10:00:00+00:00", -7, customer_id="cust_b")
    result = dg.materialize(
        [*usage_assets, usage_events, reported_usage, invalid_values],
        partition_key="2025-03",
        resources={"warehouse": WarehouseResource(database_url=database_url), "billing_api": api},
        raise_on_error=False,
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["invalid"].value == [
        {
            "metric": "events_sent",
            "customer_id": "cust_b",
            "day": "2025-03-04",
            "quantity": "-7",
            "problem": "negative usage",
        }
    ]
    assert not any(e.step_key == "reported_usage" and e.is_step_success for e in result.all_events)
    assert sandbox.events() == []  # nothing was sent


def test_invalid_values_flag_unknown_customers_when_a_registry_exists(
    engine: sa.Engine, database_url: str
) -> None:
    _load(
        engine,
        sent("a", "2025-03-02T10:00:00+00:00", 1),
        sent("b", "2025-03-02T10:00:00+00:00", 1, customer_id="cust_ghost"),
    )
    aggregate(database_url, "2025-03")
    warehouse = WarehouseResource(database_url=database_url)
    context = dg.build_asset_check_context()
    assert invalid_values(context, warehouse=warehouse).passed  # no registry: nothing to compare
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO customers (customer_id) VALUES ('cust_a')"))
    result = invalid_values(context, warehouse=warehouse)
    assert [p["customer_id"] for p in result.metadata["invalid"].value] == ["cust_ghost"]
    assert result.metadata["invalid"].value[0]["problem"] == "unknown customer"


def test_raw_data_gaps_warn_about_a_missing_day(
    engine: sa.Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USAGE_BILLING_NOW", "2025-03-11T12:00:00+00:00")
    check = build_raw_data_gap_check(collectors()["events_sent"])
    first = dt.date(2025, 2, 11)  # the check looks back 28 days from today (2025-03-11)
    days = [first + dt.timedelta(days=n) for n in range(28)]
    missing = dt.date(2025, 3, 6)
    _load(engine, *(sent(f"d{d}", f"{d}T10:00:00+00:00", 1) for d in days if d != missing))
    warehouse = WarehouseResource(database_url=database_url)
    context = dg.build_asset_check_context()
    result = check(context, warehouse=warehouse)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["empty_days"].value == [{"metric": "events_sent", "day": "2025-03-06"}]
    _load(engine, sent("late-d6", "2025-03-06T10:00:00+00:00", 1))
    assert check(context, warehouse=warehouse).passed


def test_raw_data_gaps_stay_quiet_for_metrics_that_rarely_have_data(
    engine: sa.Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USAGE_BILLING_NOW", "2025-03-11T12:00:00+00:00")
    _load(engine, sent("once", "2025-03-02T10:00:00+00:00", 1))
    check = build_raw_data_gap_check(collectors()["events_sent"])
    result = check(
        dg.build_asset_check_context(), warehouse=WarehouseResource(database_url=database_url)
    )
    assert result.passed and result.metadata["days_with_data"].value == 1
