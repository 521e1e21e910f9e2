"""Each check fails on a constructed gap, says which customers, metrics and days, and passes on a
clean run."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from metronome_sandbox.settings import DEV_TOKEN
from tests.helpers import sent, store_raw
from tests.pipeline import Sandbox, aggregate, run_month
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.reported_usage import reported_usage
from usage_assets.assets.usage_events import usage_events
from usage_assets.checks import (
    billing_api_reconciliation,
    build_raw_data_gap_check,
    invalid_values,
    reporting_gaps,
)
from usage_billing import loader
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


def test_reconciliation_catches_usage_the_ledger_does_not_know(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    _load(engine, sent("a", "2025-03-02T10:00:00+00:00", "2.5"))
    assert run_month(database_url, api, "2025-03").success
    warehouse = WarehouseResource(database_url=database_url)
    assert billing_api_reconciliation(warehouse=warehouse, billing_api=api).passed

    stray = {
        "transaction_id": "sent-by-someone-else",
        "customer_id": "cust_a",
        "event_type": "events_sent",
        "timestamp": "2025-03-03T00:00:00Z",
        "properties": {"events_sent": "1"},
    }
    headers = {"Authorization": f"Bearer {DEV_TOKEN}"}
    httpx.post(f"{sandbox.url}/v1/ingest", json=[stray], headers=headers).raise_for_status()
    result = billing_api_reconciliation(warehouse=warehouse, billing_api=api)
    assert not result.passed
    assert _json(result, "mismatches") == [
        {"customer_id": "cust_a", "metric": "events_sent", "ledger": "2.5", "billing_api": "3.5"}
    ]


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
