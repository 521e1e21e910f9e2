"""Obviously-correct Python models of the billable metrics in docs/architecture.md.

Each model reads a whole event history in memory, walks it entity by entity in the most direct
way, and returns `{(customer_id, window_start): value}` for the half-open period `[start, end)`
as known at `as_of` (events with `occurred_at <= as_of`). The SQL collectors must agree with
them on every history; the readings of ambiguous points are the ones stated in the SQL files.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Usage = dict[tuple[str, dt.datetime], Decimal]
DAY = dt.timedelta(hours=24)
SETTLE_ZENDESK = dt.timedelta(hours=72)
RESOLUTIONS = ("resolution_confirmed", "resolution_assumed")


@dataclass(frozen=True)
class Event:
    """One raw metric as a producer sends it."""

    event_id: str
    customer_id: str
    metric: str
    occurred_at: dt.datetime
    properties: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The JSON line the loader reads."""
        return json.dumps(
            {
                "event_id": self.event_id,
                "customer_id": self.customer_id,
                "metric": self.metric,
                "occurred_at": self.occurred_at.isoformat(),
                "properties": self.properties,
            }
        )

    @property
    def order(self) -> tuple[dt.datetime, bytes]:
        """ "Latest" order: occurred_at, then event_id byte-wise."""
        return (self.occurred_at, self.event_id.encode())


def day(at: dt.datetime) -> dt.datetime:
    """Start of the UTC day of `at`."""
    utc = at.astimezone(dt.UTC)
    return dt.datetime(utc.year, utc.month, utc.day, tzinfo=dt.UTC)


def _known(events: Iterable[Event], metric: str, as_of: dt.datetime) -> list[Event]:
    return [e for e in events if e.metric == metric and e.occurred_at <= as_of]


def _group(events: Iterable[Event], key: str) -> dict[tuple[str, Any], list[Event]]:
    groups: dict[tuple[str, Any], list[Event]] = defaultdict(list)
    for event in events:
        groups[(event.customer_id, event.properties[key])].append(event)
    return groups


def _add(usage: Usage, customer: str, at: dt.datetime, value: Decimal) -> None:
    usage[(customer, day(at))] = usage.get((customer, day(at)), Decimal(0)) + value


def _in(start: dt.datetime, at: dt.datetime, end: dt.datetime) -> bool:
    return start <= at < end


def qualifies(properties: dict[str, Any]) -> bool:
    """A customer message, or a customer menu option other than End Chat."""
    if properties.get("actor") != "customer":
        return False
    action = properties.get("action")
    return action == "message" or (
        action == "menu_option" and properties.get("option") != "End Chat"
    )


def agentforce_conversations(
    events: Iterable[Event], start: dt.datetime, end: dt.datetime, as_of: dt.datetime
) -> Usage:
    """Greedy 24 h windows per conversation, each counted on the day of its opening action."""
    usage: Usage = {}
    actions = [e for e in _known(events, "chat_action", as_of) if qualifies(e.properties)]
    for (customer, _), conversation in _group(actions, "conversation_id").items():
        window_end: dt.datetime | None = None
        for at in sorted(e.occurred_at for e in conversation):
            if window_end is None or at >= window_end:
                window_end = at + DAY
                if _in(start, at, end):
                    _add(usage, customer, at, Decimal(1))
    return usage


def _tickets(events: Iterable[Event], bot: str, as_of: dt.datetime):
    support = [e for e in _known(events, "support_event", as_of) if e.properties["bot"] == bot]
    return _group(support, "ticket_id").items()


def fin_resolutions(
    events: Iterable[Event], start: dt.datetime, end: dt.datetime, as_of: dt.datetime
) -> Usage:
    """First resolution with no handoff in [r, r + 24h], once as_of > r + 24h, on r's day."""
    usage: Usage = {}
    for (customer, _), ticket in _tickets(events, "fin", as_of):
        resolutions = [e.occurred_at for e in ticket if e.properties["kind"] in RESOLUTIONS]
        if not resolutions:
            continue
        resolved = min(resolutions)
        handed_off = any(
            e.properties["kind"] == "human_handoff" and resolved <= e.occurred_at <= resolved + DAY
            for e in ticket
        )
        if as_of > resolved + DAY and not handed_off and _in(start, resolved, end):
            _add(usage, customer, resolved, Decimal(1))
    return usage


def zendesk_automated_resolutions(
    events: Iterable[Event], start: dt.datetime, end: dt.datetime, as_of: dt.datetime
) -> Usage:
    """Tickets with an AI answer and no handoff, counted on the day of last event + 72 h."""
    usage: Usage = {}
    for (customer, _), ticket in _tickets(events, "zendesk", as_of):
        kinds = {e.properties["kind"] for e in ticket}
        settled = max(e.occurred_at for e in ticket) + SETTLE_ZENDESK
        billable = "ai_answer" in kinds and "human_handoff" not in kinds
        if billable and settled <= as_of and _in(start, settled, end):
            _add(usage, customer, settled, Decimal(1))
    return usage


def _latest_stated_amount(history: list[Event], upto: Event) -> Decimal | None:
    stated = [
        e for e in history if e.order <= upto.order and e.properties.get("amount") is not None
    ]
    if not stated:
        return None
    return Decimal(str(max(stated, key=lambda e: e.order).properties["amount"]))


def _latest_wins(
    events: Iterable[Event],
    metric: str,
    key: str,
    as_of: dt.datetime,
    accept: Callable[[tuple[str, Any], list[Event], Event], bool],
) -> list[tuple[str, list[Event], Event]]:
    """(customer, entity history, latest event) for entities whose latest event is accepted."""
    found = []
    for entity, history in _group(_known(events, metric, as_of), key).items():
        latest = max(history, key=lambda e: e.order)
        if accept(entity, history, latest):
            found.append((entity[0], history, latest))
    return found


def chargeflow_recovered_amount(
    events: Iterable[Event], start: dt.datetime, end: dt.datetime, as_of: dt.datetime
) -> Usage:
    """Amount of disputes whose latest status is won, on the day of that won event."""
    events = list(events)
    usage: Usage = {}
    won = _latest_wins(
        events,
        "chargeback_dispute",
        "dispute_id",
        as_of,
        lambda _, __, latest: latest.properties["status"] == "won",
    )
    for customer, history, latest in won:
        amount = _latest_stated_amount(history, latest)
        if amount is not None and _in(start, latest.occurred_at, end):
            _add(usage, customer, latest.occurred_at, amount)
    return usage


def chargeflow_prevented_chargebacks(
    events: Iterable[Event], start: dt.datetime, end: dt.datetime, as_of: dt.datetime
) -> Usage:
    """Alerts whose latest outcome is prevented, on the day of that event."""
    usage: Usage = {}
    prevented = _latest_wins(
        events,
        "chargeback_alert",
        "alert_id",
        as_of,
        lambda _, __, latest: latest.properties["outcome"] == "prevented",
    )
    for customer, _, latest in prevented:
        if _in(start, latest.occurred_at, end):
            _add(usage, customer, latest.occurred_at, Decimal(1))
    return usage


def riskified_approved_value(
    events: Iterable[Event], start: dt.datetime, end: dt.datetime, as_of: dt.datetime
) -> Usage:
    """Amount of orders approved (latest decision) with no known fraud chargeback, on that day."""
    events = list(events)
    charged_back = {
        (e.customer_id, e.properties["order_id"]) for e in _known(events, "fraud_chargeback", as_of)
    }
    usage: Usage = {}
    approved = _latest_wins(
        events,
        "transaction_decision",
        "order_id",
        as_of,
        lambda order, _, latest: (
            latest.properties["decision"] == "approved" and order not in charged_back
        ),
    )
    for customer, history, latest in approved:
        amount = _latest_stated_amount(history, latest)
        if amount is not None and _in(start, latest.occurred_at, end):
            _add(usage, customer, latest.occurred_at, amount)
    return usage


MODELS: dict[str, Callable[[Iterable[Event], dt.datetime, dt.datetime, dt.datetime], Usage]] = {
    "agentforce_conversations": agentforce_conversations,
    "fin_resolutions": fin_resolutions,
    "zendesk_automated_resolutions": zendesk_automated_resolutions,
    "chargeflow_recovered_amount": chargeflow_recovered_amount,
    "chargeflow_prevented_chargebacks": chargeflow_prevented_chargebacks,
    "riskified_approved_value": riskified_approved_value,
}
