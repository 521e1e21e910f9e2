"""The outcome generators: deterministic, valid, never in the future, small enough for the demo,
rich in the hard cases, and what the collectors compute on them agrees with the models."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa

from tests.collectors.common import compute
from tests.collectors.models import MODELS, Event
from usage_billing import collectors, periods, synthetic

pytestmark = pytest.mark.integration

OUTCOME_METRICS = {
    "chat_action",
    "support_event",
    "chargeback_dispute",
    "chargeback_alert",
    "transaction_decision",
    "fraud_chargeback",
}
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(hours=24)


def _plan(month: str, customers: int, now: dt.datetime, seed_value: int = 7) -> synthetic.SeedPlan:
    return dataclasses.replace(synthetic.plan(month, customers, seed_value), now=now)


def _events(plan: synthetic.SeedPlan) -> list[Event]:
    return [
        Event(
            d["event_id"],
            d["customer_id"],
            d["metric"],
            dt.datetime.fromisoformat(d["occurred_at"]),
            d["properties"],
        )
        for d in synthetic.documents(plan)
        if d["metric"] in OUTCOME_METRICS
    ]


def _by(events: list[Event], metric: str, key: str) -> dict[Any, list[Event]]:
    entities: dict[Any, list[Event]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.order):
        if event.metric == metric:
            entities[(event.customer_id, event.properties[key])].append(event)
    return entities


@pytest.fixture(scope="module")
def january() -> list[Event]:
    """A whole January for 20 customers, seeded long after it ended."""
    return _events(_plan("2025-01", 20, dt.datetime(2025, 6, 1, tzinfo=dt.UTC)))


def test_every_outcome_metric_has_a_generator(january: list[Event]) -> None:
    assert {e.metric for e in january} == OUTCOME_METRICS


def test_generation_is_deterministic_and_ids_are_unique(january: list[Event]) -> None:
    again = _events(_plan("2025-01", 20, dt.datetime(2025, 6, 1, tzinfo=dt.UTC)))
    assert again == january
    assert len({e.event_id for e in january}) == len(january)
    other_seed = _events(_plan("2025-01", 20, dt.datetime(2025, 6, 1, tzinfo=dt.UTC), 8))
    assert not {e.event_id for e in other_seed} & {e.event_id for e in january}


def test_nothing_is_in_the_future_and_seeding_later_only_adds(january: list[Event]) -> None:
    now = dt.datetime(2025, 1, 20, 13, 30, tzinfo=dt.UTC)
    early = _events(_plan("2025-01", 20, now))
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert early and all(start <= e.occurred_at < now for e in early)
    later = {e.event_id: e for e in january}
    assert all(later[e.event_id] == e for e in early)  # same ids, same content
    assert all(e.occurred_at < dt.datetime(2025, 6, 1, tzinfo=dt.UTC) for e in january)


def test_amounts_are_decimal_strings_with_two_decimals(january: list[Event]) -> None:
    amounts = [e.properties["amount"] for e in january if "amount" in e.properties]
    assert amounts and all(re.fullmatch(r"\d+\.\d\d", a) for a in amounts)


def test_conversations_cover_the_hard_cases(january: list[Event]) -> None:
    conversations = _by(january, "chat_action", "conversation_id").values()
    customer_actions = [
        [e for e in c if e.properties["actor"] == "customer"] for c in conversations
    ]
    assert any(not actions for actions in customer_actions)  # agent-only
    assert any(e.properties.get("option") == "End Chat" for c in conversations for e in c)
    spans = [c[-1].occurred_at - c[0].occurred_at for c in conversations]
    assert any(span > 2 * DAY for span in spans)
    assert any(c[0].occurred_at.month == 1 and c[-1].occurred_at.month == 2 for c in conversations)
    gaps = {
        b.occurred_at - a.occurred_at for c in customer_actions for a, b in itertools.pairwise(c)
    }
    assert {DAY - dt.timedelta(minutes=1), DAY} <= {round_to_minute(g) for g in gaps}


def round_to_minute(delta: dt.timedelta) -> dt.timedelta:
    """Gaps between two exchanges also include the seconds of the first exchange."""
    return dt.timedelta(minutes=delta // dt.timedelta(minutes=1))


def test_tickets_cover_the_hard_cases(january: list[Event]) -> None:
    tickets = _by(january, "support_event", "ticket_id").values()
    handoffs_after_resolution = set()
    for ticket in tickets:
        kinds = [e.properties["kind"] for e in ticket]
        resolutions = [e.occurred_at for e in ticket if e.properties["kind"].startswith("resol")]
        if resolutions and "human_handoff" in kinds:
            handoff = next(e for e in ticket if e.properties["kind"] == "human_handoff")
            handoffs_after_resolution.add(handoff.occurred_at - resolutions[0])
    assert {DAY - dt.timedelta(minutes=1), DAY, DAY + dt.timedelta(minutes=1)} <= (
        handoffs_after_resolution
    )
    reopened = [
        t
        for t in tickets
        if t[0].properties["bot"] == "zendesk"
        and any(b.occurred_at - a.occurred_at > 72 * HOUR for a, b in itertools.pairwise(t))
    ]
    assert reopened
    assert any(sum(e.properties["kind"].startswith("resol") for e in t) > 1 for t in tickets)


def test_disputes_alerts_and_orders_cover_the_hard_cases(january: list[Event]) -> None:
    disputes = _by(january, "chargeback_dispute", "dispute_id").values()
    statuses = [[e.properties["status"] for e in d] for d in disputes]
    assert any(s[-2:] == ["won", "lost"] for s in statuses)
    assert any(s[-2:] == ["lost", "won"] for s in statuses)
    assert any(
        e.properties["status"] == "won" and "amount" not in e.properties
        for d in disputes
        for e in d
    )
    alerts = [
        [e.properties["outcome"] for e in a]
        for a in _by(january, "chargeback_alert", "alert_id").values()
    ]
    assert ["prevented", "not_prevented"] in alerts and ["not_prevented"] in alerts
    orders = _by(january, "transaction_decision", "order_id")
    decisions = [[e.properties["decision"] for e in o] for o in orders.values()]
    assert ["declined"] in decisions and ["declined", "approved"] in decisions
    assert ["approved", "declined"] in decisions
    frauds = [e for e in january if e.metric == "fraud_chargeback"]
    assert frauds
    for fraud in frauds:
        approval = orders[(fraud.customer_id, fraud.properties["order_id"])][-1]
        assert approval.properties["decision"] == "approved"
        assert fraud.occurred_at - approval.occurred_at >= 7 * DAY
    assert any(f.occurred_at.month > 2 for f in frauds)  # restates January months later


def test_fifty_customers_stay_within_tens_of_thousands_per_metric() -> None:
    plan = _plan("2025-01", 50, dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
    counts: dict[str, int] = defaultdict(int)
    for event in _events(plan):
        counts[event.metric] += 1
    assert max(counts.values()) < 50_000, counts


def test_collectors_agree_with_the_models_on_seeded_data(engine: sa.Engine) -> None:
    now = dt.datetime(2025, 2, 10, 9, 0, tzinfo=dt.UTC)
    events: list[Event] = []
    for month in ("2025-01", "2025-02"):
        plan = _plan(month, 6, now)
        result = synthetic.seed(engine, plan)
        assert result.quarantined == 0
        events += _events(plan)
    for metric, model in MODELS.items():
        for month in ("2025-01", "2025-02"):
            period = periods.month_bounds(month)
            for as_of in (now, now + 120 * DAY):
                expected = {k: v for k, v in model(events, *period, as_of).items() if v != 0}
                assert compute(engine, metric, period, as_of) == expected, (metric, month)
            assert _replaced(engine, metric, period, now + 120 * DAY) == expected


def _replaced(
    engine: sa.Engine, metric: str, period: tuple[dt.datetime, dt.datetime], as_of: dt.datetime
) -> dict[tuple[str, dt.datetime], Any]:
    """What the partition path (collector wrapped in the aggregated_usage insert) stores."""
    with engine.begin() as conn:
        collectors.replace_partition(conn, collectors.collectors()[metric], *period, as_of)
        rows = conn.execute(
            sa.text(
                "SELECT customer_id, window_start, value FROM aggregated_usage"
                " WHERE billable_metric = :metric AND window_start >= :start"
                " AND window_start < :end"
            ),
            {"metric": metric, "start": period[0], "end": period[1]},
        )
        return {(r.customer_id, r.window_start): r.value for r in rows}
