"""Restatement end to end: a late fraud chargeback changes a reported month's truth, and the
reporting path sends exactly the negative delta (dated now once the window is past 34 days)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.pipeline import Sandbox, report_metadata, run_month, truth
from usage_billing import loader
from usage_billing.resources import BillingApiResource

pytestmark = pytest.mark.integration

METRIC = "riskified_approved_value"


def _line(event_id: str, metric: str, occurred_at: str, **properties: str) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "customer_id": "cust_r",
            "metric": metric,
            "occurred_at": occurred_at,
            "properties": properties,
        }
    )


def _approve(engine: sa.Engine, order: str, day: str, amount: str) -> None:
    line = _line(
        f"ok-{order}",
        "transaction_decision",
        f"{day}T10:00:00+00:00",
        order_id=order,
        decision="approved",
        amount=amount,
    )
    assert loader.load_lines(engine, [line], source="t").quarantined == 0


def _fraud(engine: sa.Engine, order: str, day: str) -> None:
    line = _line(f"fraud-{order}", "fraud_chargeback", f"{day}T09:00:00+00:00", order_id=order)
    assert loader.load_lines(engine, [line], source="t").quarantined == 0


def _riskified(sandbox: Sandbox) -> list[dict]:
    return [e for e in sandbox.events() if e["event_type"] == METRIC]


def test_late_fraud_chargeback_sends_the_negative_delta(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    # NOW is 2025-03-20 12:00: March windows are inside the backdating limit.
    _approve(engine, "o1", "2025-03-02", "100.00")
    _approve(engine, "o2", "2025-03-03", "40.10")
    assert run_month(database_url, api, "2025-03").success
    assert sandbox.totals()[("cust_r", METRIC)] == Decimal("140.10")

    _fraud(engine, "o1", "2025-03-18")  # sixteen days after the approval
    result = run_month(database_url, api, "2025-03")
    assert result.success and report_metadata(result)["sent"] == 1
    correction = _riskified(sandbox)[-1]
    assert correction["properties"][METRIC] == "-100"
    assert correction["timestamp"] == "2025-03-02T00:00:00Z"  # its own window
    assert sandbox.totals()[("cust_r", METRIC)] == Decimal("40.10")
    assert sandbox.totals() == truth(engine)


def test_restatement_past_the_backdating_limit_goes_dated_now(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    _approve(engine, "o9", "2025-01-20", "250.00")
    assert run_month(database_url, api, "2025-01").success
    _fraud(engine, "o9", "2025-03-10")  # seven weeks later: January is past 34 days
    result = run_month(database_url, api, "2025-01")
    assert result.success and report_metadata(result)["dated_now_corrections"] == 1
    correction = _riskified(sandbox)[-1]
    assert correction["properties"][METRIC] == "-250"
    assert correction["properties"]["corrects_window"] == "2025-01-20T00:00:00Z"
    assert correction["timestamp"] == "2025-03-20T12:00:00Z"
    assert ("cust_r", METRIC) not in sandbox.totals()  # 250 - 250: nothing billable remains
    assert sandbox.totals() == truth(engine)
