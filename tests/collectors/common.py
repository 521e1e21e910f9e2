"""Shared builders for the collector tests: events, loading through the loader, computing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tests.collectors.models import Event, Usage
from usage_billing import collectors, loader

JANUARY = (dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 2, 1, tzinfo=dt.UTC))
FEBRUARY = (dt.datetime(2025, 2, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
LATER = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)
HOUR = dt.timedelta(hours=1)
When = str | dt.datetime


def at(text: str) -> dt.datetime:
    """A UTC datetime from 'YYYY-MM-DD HH:MM[:SS[.ffffff]]', or with an explicit offset."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def day(text: str) -> dt.datetime:
    """Midnight UTC of 'YYYY-MM-DD': a window_start."""
    return at(f"{text} 00:00")


class History:
    """Builds events with unique ids; `customer` is the default customer."""

    def __init__(self, customer: str = "cust_a") -> None:
        self.customer = customer
        self.events: list[Event] = []

    def add(self, metric: str, when: When, event_id: str | None = None, **props: Any) -> Event:
        """Append one event; `customer_id=` in props overrides the default customer."""
        customer = props.pop("customer_id", self.customer)
        occurred_at = at(when) if isinstance(when, str) else when
        event_id = event_id or f"{metric}-{len(self.events):04d}"
        event = Event(event_id, customer, metric, occurred_at, props)
        self.events.append(event)
        return event

    def chat(self, when: When, conversation: str = "c1", actor: str = "customer", **props: Any):
        props.setdefault("action", "message")
        return self.add("chat_action", when, conversation_id=conversation, actor=actor, **props)

    def support(self, when: When, ticket: str, kind: str, bot: str, **props: Any) -> Event:
        return self.add("support_event", when, ticket_id=ticket, kind=kind, bot=bot, **props)

    def dispute(self, when: When, dispute: str, status: str, amount: str | None = None, **props):
        if amount is not None:
            props["amount"] = amount
        return self.add("chargeback_dispute", when, dispute_id=dispute, status=status, **props)

    def alert(self, when: When, alert: str, outcome: str, **props: Any) -> Event:
        return self.add("chargeback_alert", when, alert_id=alert, outcome=outcome, **props)

    def decision(self, when: When, order: str, decision: str, amount: str | None = None, **props):
        if amount is not None:
            props["amount"] = amount
        return self.add("transaction_decision", when, order_id=order, decision=decision, **props)

    def fraud(self, when: When, order: str, **props: Any) -> Event:
        return self.add("fraud_chargeback", when, order_id=order, **props)


def load(engine: sa.Engine, events: Iterable[Event]) -> None:
    """Load events through the loader's validation and COPY path; none may be quarantined."""
    result = loader.load_lines(engine, (e.line() for e in events), source="test")
    assert result.quarantined == 0, result.reasons


def reset(engine: sa.Engine) -> None:
    """Empty the store between examples of a property test (one database per test function)."""
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM raw_metrics"))


def compute(
    engine: sa.Engine,
    metric: str,
    period: tuple[dt.datetime, dt.datetime],
    as_of: dt.datetime = LATER,
) -> Usage:
    """The collector's rows for a period as {(customer_id, window_start): value}, zeros dropped
    (aggregated_usage keeps no zero rows either)."""
    collector = collectors.collectors()[metric]
    with engine.connect() as conn:
        rows = collectors.compute(conn, collector, period[0], period[1], as_of)
    usage: Usage = {}
    for row in rows:
        assert row.groups == {}
        assert (row.customer_id, row.window_start) not in usage, "one row per customer and day"
        usage[(row.customer_id, row.window_start)] = row.value
    return nonzero(usage)


def nonzero(usage: Usage) -> Usage:
    """Usage without zero values."""
    return {key: value for key, value in usage.items() if value != 0}


def merge(*usages: Usage) -> Usage:
    """Sum of several usages, key by key."""
    total: Usage = {}
    for usage in usages:
        for key, value in usage.items():
            total[key] = total.get(key, Decimal(0)) + value
    return nonzero(total)
