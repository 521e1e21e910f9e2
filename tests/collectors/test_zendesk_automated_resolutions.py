"""zendesk_automated_resolutions against hand-computed settlements.

The definition: docs/architecture.md, "Billable metrics"."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.collectors.common import FEBRUARY, JANUARY, MICROSECOND, History, at, compute, day, load

pytestmark = pytest.mark.integration

METRIC = "zendesk_automated_resolutions"
ONE = Decimal(1)


def _zd(h: History, when: str, ticket: str, kind: str, **props) -> None:
    h.support(when, ticket, kind, "zendesk", **props)


def test_settles_exactly_72_hours_after_the_last_event(engine: sa.Engine) -> None:
    h = History()
    _zd(h, "2025-01-10 11:00", "t1", "customer_message")
    _zd(h, "2025-01-10 12:00", "t1", "ai_answer")
    load(engine, h.events)
    settles = at("2025-01-13 12:00")
    assert compute(engine, METRIC, JANUARY, settles - MICROSECOND) == {}
    assert compute(engine, METRIC, JANUARY, settles) == {("cust_a", day("2025-01-13")): ONE}


def test_the_last_event_of_any_kind_sets_the_settlement_day(engine: sa.Engine) -> None:
    h = History()
    _zd(h, "2025-01-10 12:00", "t1", "ai_answer")
    _zd(h, "2025-01-12 08:00", "t1", "customer_message")
    _zd(h, "2025-01-12 08:05", "t1", "resolution_confirmed")
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY, at("2025-01-15 08:04")) == {}
    assert compute(engine, METRIC, JANUARY) == {("cust_a", day("2025-01-15")): ONE}


def test_needs_an_ai_answer_and_no_handoff_ever(engine: sa.Engine) -> None:
    h = History()
    _zd(h, "2025-01-10 12:00", "no_answer", "customer_message")
    _zd(h, "2025-01-10 12:05", "no_answer", "resolution_assumed")
    _zd(h, "2025-01-10 11:00", "handoff_first", "human_handoff")
    _zd(h, "2025-01-10 12:00", "handoff_first", "ai_answer")
    _zd(h, "2025-01-10 12:00", "handoff_later", "ai_answer")
    _zd(h, "2025-01-12 12:00", "handoff_later", "human_handoff")
    _zd(h, "2025-01-10 12:00", "good", "ai_answer")
    _zd(h, "2025-01-10 12:00", "good", "ai_answer")  # several answers: still one ticket
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {("cust_a", day("2025-01-13")): ONE}


def test_a_reopened_ticket_moves_to_its_new_settlement_and_counts_once(engine: sa.Engine) -> None:
    h = History()
    _zd(h, "2025-01-10 12:00", "t1", "ai_answer")
    _zd(h, "2025-01-20 09:00", "t1", "customer_message")  # reopened after it had settled
    _zd(h, "2025-01-20 09:01", "t1", "ai_answer")
    _zd(h, "2025-01-10 12:00", "t2", "ai_answer")
    _zd(h, "2025-01-28 12:00", "t2", "human_handoff")  # reopened and escalated: never billable
    load(engine, h.events)
    before_reopening = at("2025-01-14 00:00")
    assert compute(engine, METRIC, JANUARY, before_reopening) == {
        ("cust_a", day("2025-01-13")): Decimal(2)
    }
    assert compute(engine, METRIC, JANUARY) == {("cust_a", day("2025-01-23")): ONE}


def test_settlement_after_the_month_end_belongs_to_the_next_month(engine: sa.Engine) -> None:
    h = History()
    _zd(h, "2025-01-28 23:59:59.999999", "jan", "ai_answer")  # settles Jan 31 23:59:59.999999
    _zd(h, "2025-01-29 00:00", "feb", "ai_answer")  # settles Feb 1 00:00
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {("cust_a", day("2025-01-31")): ONE}
    assert compute(engine, METRIC, FEBRUARY) == {("cust_a", day("2025-02-01")): ONE}


def test_only_zendesk_events_count_and_tickets_are_per_customer(engine: sa.Engine) -> None:
    h = History()
    _zd(h, "2025-01-10 12:00", "t1", "ai_answer")
    h.support("2025-01-10 13:00", "t1", "human_handoff", "fin")  # a Fin ticket's handoff
    h.support("2025-01-10 12:00", "t2", "ai_answer", "fin")
    _zd(h, "2025-01-10 12:00", "t1", "ai_answer", customer_id="cust_b")
    _zd(h, "2025-01-11 12:00", "t1", "customer_message", customer_id="cust_b")
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-13")): ONE,
        ("cust_b", day("2025-01-14")): ONE,
    }
