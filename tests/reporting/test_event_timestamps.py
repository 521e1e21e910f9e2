"""No event is built with a timestamp the billing API must reject: windows that have not started
wait for their time, and windows that aged past the backdating limit go in the correction form."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import at
from tests.pipeline import Sandbox, fast_api, outbox_status, report_metadata, run_month, truth
from tests.reporting.test_exactly_once import load_month
from usage_billing import reporting
from usage_billing.resources import BillingApiResource

pytestmark = pytest.mark.integration

# A service writing straight into the store, past the loader and its future-date rule.
_INSERT_RAW = sa.text("""
INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, value, properties)
VALUES (:event_id, 'cust_000', 'events_sent', :occurred_at, :value,
        '{"environment_type": "PRODUCTION"}')
""")


def move_clock(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, moment: dt.datetime) -> None:
    """Move the pipeline's pinned clock and the sandbox's together."""
    monkeypatch.setenv("USAGE_BILLING_NOW", moment.isoformat())
    body = {"now": reporting.rfc3339(moment)}
    response = httpx.post(f"{sandbox.url}/sandbox/clock", json=body, headers=sandbox.headers)
    response.raise_for_status()


def test_a_raw_row_dated_days_ahead_waits_for_its_moment_then_is_delivered(
    engine: sa.Engine,
    database_url: str,
    sandbox: Sandbox,
    api: BillingApiResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_month(engine, "2025-03", customers=2, days=3)
    with engine.begin() as conn:  # NOW is 2025-03-20 12:00: five days ahead
        conn.execute(
            _INSERT_RAW, {"event_id": "ahead", "occurred_at": at("2025-03-25 10:00"), "value": 7}
        )

    first = run_month(database_url, api, "2025-03")
    assert first.success
    assert reporting.dead_letters(engine) == []
    assert max(event["timestamp"] for event in sandbox.events()) == "2025-03-03T00:00:00Z"
    assert sandbox.totals() == truth(engine)  # the future window is not usage yet

    # its window starts, but the row has not occurred yet
    move_clock(sandbox, monkeypatch, at("2025-03-25 00:00"))
    assert run_month(database_url, api, "2025-03").success
    assert not [e for e in sandbox.events() if e["timestamp"] == "2025-03-25T00:00:00Z"]

    move_clock(sandbox, monkeypatch, at("2025-03-25 10:00"))  # now it has
    second = run_month(database_url, api, "2025-03")
    assert second.success
    assert report_metadata(second)["acknowledged"] == 1
    [ahead] = [e for e in sandbox.events() if e["timestamp"] == "2025-03-25T00:00:00Z"]
    assert ahead["properties"]["events_sent"] == "7"
    assert sandbox.totals() == truth(engine)
    assert reporting.dead_letters(engine) == []


def test_events_held_up_past_the_backdating_limit_go_in_the_correction_form(
    engine: sa.Engine,
    database_url: str,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_month(engine, "2025-02", customers=1, days=28)
    sandbox.configure(fault_rate=1)  # an outage when the windows of 15-28 Feb were recent
    api = fast_api(sandbox.url, max_retries=1, circuit_breaker_threshold=1000)
    assert not run_month(database_url, api, "2025-02").success
    assert outbox_status(engine) == {"dead": 28}

    # Three days later 15-17 Feb are past the limit too: resent dated now, as corrections.
    move_clock(sandbox, monkeypatch, at("2025-03-23 12:00"))
    sandbox.configure(fault_rate=0)
    assert run_month(database_url, api, "2025-02").success
    events = sandbox.events()
    corrections = sorted(
        e["properties"]["corrects_window"] for e in events if "corrects_window" in e["properties"]
    )
    assert len(events) == 28 and len(corrections) == 17
    assert corrections[-1] == "2025-02-17T00:00:00Z"
    assert min(e["timestamp"] for e in events) == "2025-02-18T00:00:00Z"
    assert sandbox.totals() == truth(engine)
