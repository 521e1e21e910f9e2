"""The collectors' headers declare each new raw metric with exactly the properties its definition
cannot do without; the loader quarantines lines that lack one, naming it."""

import json

import pytest
import sqlalchemy as sa

from tests.collectors.common import History, load
from usage_billing import collectors, loader

pytestmark = pytest.mark.integration

REQUIRED = {
    "chat_action": ("action", "actor", "conversation_id"),
    "support_event": ("bot", "kind", "ticket_id"),
    "chargeback_dispute": ("dispute_id", "status"),
    "chargeback_alert": ("alert_id", "outcome"),
    "transaction_decision": ("decision", "order_id"),
    "fraud_chargeback": ("order_id",),
}
COMPLETE = {
    "chat_action": {"conversation_id": "c1", "actor": "customer", "action": "message"},
    "support_event": {"ticket_id": "t1", "kind": "ai_answer", "bot": "fin"},
    "chargeback_dispute": {"dispute_id": "d1", "status": "pending"},
    "chargeback_alert": {"alert_id": "a1", "outcome": "prevented"},
    "transaction_decision": {"order_id": "o1", "decision": "declined"},
    "fraud_chargeback": {"order_id": "o1"},
}
CASES = [(metric, prop) for metric, props in REQUIRED.items() for prop in props]


def _line(metric: str, properties: dict) -> str:
    return json.dumps(
        {
            "event_id": f"{metric}-1",
            "customer_id": "cust_a",
            "metric": metric,
            "occurred_at": "2025-01-10T10:00:00+00:00",
            "properties": properties,
        }
    )


def test_declarations_are_the_union_over_the_collectors() -> None:
    declared = collectors.raw_metrics()
    assert {name: declared[name].required_properties for name in REQUIRED} == REQUIRED
    readers = {
        c.billable_metric
        for c in collectors.collectors().values()
        if "support_event" in {raw.name for raw in c.raw_metrics}
    }
    assert readers == {"fin_resolutions", "zendesk_automated_resolutions"}


@pytest.mark.parametrize(("metric", "missing"), CASES)
def test_a_line_missing_a_required_property_is_quarantined(
    engine: sa.Engine, metric: str, missing: str
) -> None:
    incomplete = {k: v for k, v in COMPLETE[metric].items() if k != missing}
    nulled = {**COMPLETE[metric], missing: None}
    result = loader.load_lines(
        engine, [_line(metric, incomplete), _line(metric, nulled)], source="test"
    )
    assert (result.loaded, result.quarantined) == (0, 2)
    with engine.connect() as conn:
        reasons = conn.execute(sa.text("SELECT reason FROM quarantined_metrics")).scalars().all()
    assert len(reasons) == 2
    for reason in reasons:
        assert reason.startswith("missing_property")
        assert f"'{missing}'" in reason
        assert metric in reason


def test_optional_properties_are_not_required(engine: sa.Engine) -> None:
    h = History()
    h.chat("2025-01-10 10:00", action="menu_option")  # no option
    h.dispute("2025-01-10 10:00", "d1", "pending")  # no amount
    h.decision("2025-01-10 10:00", "o1", "declined")  # no amount
    load(engine, h.events)
    assert loader.load_lines(engine, [_line(m, p) for m, p in COMPLETE.items()], "t").loaded == 6
