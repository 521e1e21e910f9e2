"""riskified_approved_value against hand-computed approvals and chargebacks.

The definition: docs/architecture.md, "Billable metrics"."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.collectors.common import FEBRUARY, JANUARY, History, at, compute, day, load

pytestmark = pytest.mark.integration

METRIC = "riskified_approved_value"


def test_sums_exact_amounts_of_orders_whose_latest_decision_is_approved(engine: sa.Engine) -> None:
    h = History()
    h.decision("2025-01-10 10:00", "o1", "approved", "100.10")
    h.decision("2025-01-10 11:00", "o2", "approved", "0.01")
    h.decision("2025-01-10 12:00", "o3", "declined", "999.00")
    h.decision("2025-01-10 13:00", "o4", "approved", "50.00")
    h.decision("2025-01-11 13:00", "o4", "declined", "50.00")  # review reversed it
    h.decision("2025-01-10 14:00", "o5", "declined", "70.00")
    h.decision("2025-01-12 14:00", "o5", "approved", "70.00")  # counts on the review's day
    h.decision("2025-01-31 23:59:59.999999", "o6", "approved", "1.00")
    h.decision("2025-02-01 00:00", "o7", "approved", "2.00")
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-10")): Decimal("100.11"),
        ("cust_a", day("2025-01-12")): Decimal("70.00"),
        ("cust_a", day("2025-01-31")): Decimal("1.00"),
    }
    assert compute(engine, METRIC, FEBRUARY) == {("cust_a", day("2025-02-01")): Decimal("2.00")}


def test_a_late_fraud_chargeback_restates_the_approval_period(engine: sa.Engine) -> None:
    h = History()
    h.decision("2025-01-10 10:00", "o1", "approved", "300.00")
    h.decision("2025-01-10 11:00", "o2", "approved", "20.00")
    h.fraud("2025-03-20 08:00", "o1")  # ten weeks later
    h.fraud("2025-01-20 08:00", "o2", customer_id="cust_b")  # another customer's order o2
    load(engine, h.events)
    before = at("2025-03-20 07:59:59.999999")
    assert compute(engine, METRIC, JANUARY, before) == {
        ("cust_a", day("2025-01-10")): Decimal("320.00")
    }
    assert compute(engine, METRIC, JANUARY, at("2025-03-20 08:00")) == {
        ("cust_a", day("2025-01-10")): Decimal("20.00")
    }


def test_ties_in_occurred_at_are_broken_by_event_id(engine: sa.Engine) -> None:
    h = History()
    h.decision("2025-01-10 10:00", "o1", "approved", "1.00", event_id="o1-b")
    h.decision("2025-01-10 10:00", "o1", "declined", "1.00", event_id="o1-a")
    h.decision("2025-01-10 10:00", "o2", "approved", "2.00", event_id="o2-a")
    h.decision("2025-01-10 10:00", "o2", "declined", "2.00", event_id="o2-b")
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {("cust_a", day("2025-01-10")): Decimal("1.00")}


def test_an_approval_without_amount_takes_the_order_latest_stated_amount(
    engine: sa.Engine,
) -> None:
    h = History()
    h.decision("2025-01-10 10:00", "o1", "declined", "80.00")
    h.decision("2025-01-10 12:00", "o1", "approved")
    h.decision("2025-01-11 10:00", "o2", "approved", "5.00")
    h.decision("2025-01-11 12:00", "o2", "approved")
    h.decision("2025-01-20 12:00", "o2", "declined", "6.00")  # not known at as_of
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY, at("2025-01-15 00:00")) == {
        ("cust_a", day("2025-01-10")): Decimal("80.00"),
        ("cust_a", day("2025-01-11")): Decimal("5.00"),
    }


def test_orders_are_per_customer(engine: sa.Engine) -> None:
    h = History()
    h.decision("2025-01-10 10:00", "o1", "approved", "10.00")
    h.decision("2025-01-10 10:00", "o1", "approved", "20.00", customer_id="cust_b")
    h.decision("2025-01-10 11:00", "o1", "declined", "20.00", customer_id="cust_b")
    h.fraud("2025-01-15 10:00", "o1", customer_id="cust_c")
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {("cust_a", day("2025-01-10")): Decimal("10.00")}
