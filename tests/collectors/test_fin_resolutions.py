"""fin_resolutions against hand-computed settlements (docs/architecture.md, "Billable metrics")."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.collectors.common import FEBRUARY, JANUARY, MICROSECOND, History, at, compute, day, load

pytestmark = pytest.mark.integration

METRIC = "fin_resolutions"
ONE = Decimal(1)


def _fin(h: History, when: str, ticket: str, kind: str, **props) -> None:
    h.support(when, ticket, kind, "fin", **props)


def test_billable_only_once_the_24_hour_window_has_passed(engine: sa.Engine) -> None:
    h = History()
    _fin(h, "2025-01-10 11:00", "t1", "customer_message")
    _fin(h, "2025-01-10 11:01", "t1", "ai_answer")
    _fin(h, "2025-01-10 12:00", "t1", "resolution_assumed")
    load(engine, h.events)
    window_end = at("2025-01-11 12:00")
    assert compute(engine, METRIC, JANUARY, window_end - MICROSECOND) == {}
    assert compute(engine, METRIC, JANUARY, window_end) == {}  # a handoff may still come now
    assert compute(engine, METRIC, JANUARY, window_end + MICROSECOND) == {
        ("cust_a", day("2025-01-10")): ONE
    }


def test_the_handoff_window_is_closed_at_both_ends(engine: sa.Engine) -> None:
    h = History()
    for ticket, handoff in [
        ("at_resolution", "2025-01-10 12:00"),
        ("at_24h", "2025-01-11 12:00"),
        ("just_inside", "2025-01-11 11:59:59.999999"),
        ("just_outside", "2025-01-11 12:00:00.000001"),  # billable
        ("before", "2025-01-10 11:59:59.999999"),  # billable: Fin resolved it after the human
    ]:
        _fin(h, "2025-01-10 12:00", ticket, "resolution_confirmed")
        _fin(h, handoff, ticket, "human_handoff")
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {("cust_a", day("2025-01-10")): Decimal(2)}


def test_the_first_resolution_decides_and_counts_once(engine: sa.Engine) -> None:
    h = History()
    # Handed off within 24 h of the first resolution: a later resolution does not re-qualify it.
    _fin(h, "2025-01-31 23:00", "t1", "resolution_assumed")
    _fin(h, "2025-02-01 00:30", "t1", "human_handoff")
    _fin(h, "2025-02-01 06:00", "t1", "resolution_confirmed")
    # Resolved twice without handoff: one resolution, on the first one's day.
    _fin(h, "2025-01-20 10:00", "t2", "resolution_assumed")
    _fin(h, "2025-02-05 10:00", "t2", "resolution_confirmed")
    # A handoff within 24 h of the second resolution only: the first one stands.
    _fin(h, "2025-02-06 09:00", "t2", "human_handoff")
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {("cust_a", day("2025-01-20")): ONE}
    assert compute(engine, METRIC, FEBRUARY) == {}


def test_counted_on_the_resolution_day_even_when_it_settles_next_month(engine: sa.Engine) -> None:
    h = History()
    _fin(h, "2025-01-31 23:59:59.999999", "t1", "resolution_confirmed")
    _fin(h, "2025-02-01 00:00", "t2", "resolution_confirmed")
    load(engine, h.events)
    as_of = at("2025-02-01 23:59:59.999999") + MICROSECOND  # t1's window has just passed
    assert compute(engine, METRIC, JANUARY, as_of) == {("cust_a", day("2025-01-31")): ONE}
    assert compute(engine, METRIC, FEBRUARY, as_of) == {}
    assert compute(engine, METRIC, FEBRUARY) == {("cust_a", day("2025-02-01")): ONE}


def test_only_fin_events_count_and_tickets_are_per_customer(engine: sa.Engine) -> None:
    h = History()
    _fin(h, "2025-01-10 12:00", "t1", "resolution_confirmed")
    h.support("2025-01-10 13:00", "t1", "human_handoff", "zendesk")  # another bot's ticket
    h.support("2025-01-10 12:00", "t2", "resolution_confirmed", "zendesk")
    h.support("2025-01-10 12:00", "t3", "resolution_confirmed", "Fin")
    _fin(h, "2025-01-10 12:00", "t1", "resolution_confirmed", customer_id="cust_b")
    _fin(h, "2025-01-10 12:30", "t1", "human_handoff", customer_id="cust_b")
    _fin(h, "2025-01-12 12:00", "t4", "ai_answer")  # answered, never resolved
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {("cust_a", day("2025-01-10")): ONE}
