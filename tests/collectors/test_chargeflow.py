"""chargeflow_recovered_amount and chargeflow_prevented_chargebacks against hand-computed
latest statuses (docs/architecture.md, "Billable metrics")."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.collectors.common import FEBRUARY, JANUARY, History, at, compute, day, load

pytestmark = pytest.mark.integration

RECOVERED = "chargeflow_recovered_amount"
PREVENTED = "chargeflow_prevented_chargebacks"


def test_recovered_sums_exact_amounts_of_won_disputes_on_the_won_day(engine: sa.Engine) -> None:
    h = History()
    h.dispute("2025-01-02 10:00", "d1", "pending", "1234.56")
    h.dispute("2025-01-20 10:00", "d1", "won", "1234.56")
    h.dispute("2025-01-05 10:00", "d2", "pending", "0.10")
    h.dispute("2025-01-20 23:59:59.999999", "d2", "won", "0.20")  # the won event's amount
    h.dispute("2025-01-06 10:00", "d3", "pending", "99.99")
    h.dispute("2025-01-21 10:00", "d3", "lost", "99.99")
    h.dispute("2025-01-07 10:00", "d4", "pending", "5.00")  # still pending
    h.dispute("2025-01-31 23:59:59.999999", "d5", "won", "7.77")
    h.dispute("2025-02-01 00:00", "d6", "won", "8.88")
    load(engine, h.events)
    assert compute(engine, RECOVERED, JANUARY) == {
        ("cust_a", day("2025-01-20")): Decimal("1234.76"),
        ("cust_a", day("2025-01-31")): Decimal("7.77"),
    }
    assert compute(engine, RECOVERED, FEBRUARY) == {("cust_a", day("2025-02-01")): Decimal("8.88")}


def test_recovered_follows_status_flips_as_known_at_as_of(engine: sa.Engine) -> None:
    h = History()
    h.dispute("2025-01-10 10:00", "flip_lost", "won", "100.00")
    h.dispute("2025-02-15 10:00", "flip_lost", "lost", "100.00")  # pre-arbitration reversed it
    h.dispute("2025-01-11 10:00", "flip_won", "lost", "40.00")
    h.dispute("2025-02-16 10:00", "flip_won", "won", "40.00")  # won on arbitration
    h.dispute("2025-01-12 10:00", "won_twice", "won", "10.00")
    h.dispute("2025-02-17 10:00", "won_twice", "won", "10.00")
    load(engine, h.events)
    mid_february = at("2025-02-01 00:00")
    assert compute(engine, RECOVERED, JANUARY, mid_february) == {
        ("cust_a", day("2025-01-10")): Decimal("100.00"),
        ("cust_a", day("2025-01-12")): Decimal("10.00"),
    }
    assert compute(engine, RECOVERED, JANUARY) == {}  # restated once the flips are known
    assert compute(engine, RECOVERED, FEBRUARY) == {
        ("cust_a", day("2025-02-16")): Decimal("40.00"),
        ("cust_a", day("2025-02-17")): Decimal("10.00"),
    }


def test_ties_in_occurred_at_are_broken_by_event_id_bytewise(engine: sa.Engine) -> None:
    h = History()
    h.dispute("2025-01-10 10:00", "d1", "won", "1.00", event_id="d1-b")
    h.dispute("2025-01-10 10:00", "d1", "lost", "1.00", event_id="d1-a")
    h.dispute("2025-01-10 10:00", "d2", "won", "2.00", event_id="d2-a")
    h.dispute("2025-01-10 10:00", "d2", "lost", "2.00", event_id="d2-b")
    # Byte-wise 'a' (0x61) sorts after 'Z' (0x5a); a locale's dictionary order would not.
    h.dispute("2025-01-10 10:00", "d3", "won", "4.00", event_id="d3-a")
    h.dispute("2025-01-10 10:00", "d3", "lost", "4.00", event_id="d3-Z")
    load(engine, h.events)
    assert compute(engine, RECOVERED, JANUARY) == {("cust_a", day("2025-01-10")): Decimal("5.00")}


def test_a_won_event_without_amount_takes_the_dispute_latest_stated_amount(
    engine: sa.Engine,
) -> None:
    h = History()
    h.dispute("2025-01-02 10:00", "d1", "pending", "50.00")
    h.dispute("2025-01-03 10:00", "d1", "pending", "45.50")  # amount corrected
    h.dispute("2025-01-20 10:00", "d1", "won")
    h.dispute("2025-01-25 10:00", "d1", "lost", "45.00")  # not known at as_of
    load(engine, h.events)
    assert compute(engine, RECOVERED, JANUARY, at("2025-01-21 00:00")) == {
        ("cust_a", day("2025-01-20")): Decimal("45.50")
    }


def test_recovered_is_per_customer(engine: sa.Engine) -> None:
    h = History()
    h.dispute("2025-01-10 10:00", "d1", "won", "10.00")
    h.dispute("2025-01-10 10:00", "d1", "won", "20.00", customer_id="cust_b")
    h.dispute("2025-01-11 10:00", "d1", "lost", "20.00", customer_id="cust_b")
    load(engine, h.events)
    assert compute(engine, RECOVERED, JANUARY) == {("cust_a", day("2025-01-10")): Decimal("10.00")}


def test_prevented_counts_alerts_whose_latest_outcome_is_prevented(engine: sa.Engine) -> None:
    h = History()
    h.alert("2025-01-10 10:00", "a1", "prevented")
    h.alert("2025-01-10 11:00", "a2", "not_prevented")
    h.alert("2025-01-10 12:00", "a3", "prevented")
    h.alert("2025-01-25 12:00", "a3", "not_prevented")  # the chargeback came anyway
    h.alert("2025-01-11 12:00", "a4", "not_prevented")
    h.alert("2025-01-12 12:00", "a4", "prevented")
    h.alert("2025-01-13 12:00", "a5", "prevented")
    h.alert("2025-02-01 00:00", "a5", "prevented")  # once, on the latest prevented day
    h.alert("2025-01-31 23:59:59.999999", "a6", "prevented")
    h.alert("2025-01-10 10:00", "a1", "prevented", customer_id="cust_b")
    load(engine, h.events)
    assert compute(engine, PREVENTED, JANUARY) == {
        ("cust_a", day("2025-01-10")): Decimal(1),
        ("cust_a", day("2025-01-12")): Decimal(1),
        ("cust_a", day("2025-01-31")): Decimal(1),
        ("cust_b", day("2025-01-10")): Decimal(1),
    }
    assert compute(engine, PREVENTED, FEBRUARY) == {("cust_a", day("2025-02-01")): Decimal(1)}
    assert compute(engine, PREVENTED, JANUARY, at("2025-01-20 00:00")) == {
        ("cust_a", day("2025-01-10")): Decimal(2),
        ("cust_a", day("2025-01-12")): Decimal(1),
        ("cust_a", day("2025-01-13")): Decimal(1),
        ("cust_b", day("2025-01-10")): Decimal(1),
    }


def test_prevented_ties_are_broken_by_event_id(engine: sa.Engine) -> None:
    h = History()
    h.alert("2025-01-10 10:00", "a1", "prevented", event_id="a1-2")
    h.alert("2025-01-10 10:00", "a1", "not_prevented", event_id="a1-1")
    h.alert("2025-01-10 10:00", "a2", "prevented", event_id="a2-1")
    h.alert("2025-01-10 10:00", "a2", "not_prevented", event_id="a2-2")
    load(engine, h.events)
    assert compute(engine, PREVENTED, JANUARY) == {("cust_a", day("2025-01-10")): Decimal(1)}
