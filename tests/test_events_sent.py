"""The events_sent collector against hand-computed expectations.

The definition: docs/architecture.md, "Billable metrics"."""

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.helpers import at, sent
from usage_billing import collectors, loader

pytestmark = pytest.mark.integration

EVENTS_SENT = collectors.collectors()["events_sent"]
JANUARY = (at("2025-01-01 00:00"), at("2025-02-01 00:00"))
NOW = at("2025-03-01 00:00")


def _compute(engine: sa.Engine, start: dt.datetime, end: dt.datetime) -> dict:
    with engine.connect() as conn:
        rows = collectors.compute(conn, EVENTS_SENT, start, end, NOW)
    return {(r.customer_id, r.window_start): r.value for r in rows}


def _load(engine: sa.Engine, *lines: str) -> None:
    result = loader.load_lines(engine, lines, source="test")
    assert result.quarantined == 0


def test_sums_production_non_duplicates_per_customer_and_utc_day(engine: sa.Engine) -> None:
    _load(
        engine,
        sent("a1", "2025-01-10T01:00:00+00:00", 10),
        sent("a2", "2025-01-10T23:59:59.999999+00:00", "2.5"),
        sent("a3", "2025-01-11T00:00:00+00:00", 4),
        sent("b1", "2025-01-10T12:00:00+00:00", 7, customer_id="cust_b"),
        sent("x1", "2025-01-10T12:00:00+00:00", 100, environment_type="STAGING"),
        sent("x2", "2025-01-10T12:00:00+00:00", 100, environment_type="production"),
        sent("x3", "2025-01-10T12:00:00+00:00", 100, is_duplicate=True),
        sent("k1", "2025-01-10T12:00:00+00:00", 1, is_duplicate=False),
        sent("k2", "2025-01-10T12:00:00+00:00", 1, is_duplicate="true"),  # a string is not true
    )
    assert _compute(engine, *JANUARY) == {
        ("cust_a", at("2025-01-10 00:00")): Decimal("14.5"),
        ("cust_a", at("2025-01-11 00:00")): Decimal("4"),
        ("cust_b", at("2025-01-10 00:00")): Decimal("7"),
    }


def test_month_boundaries_are_half_open(engine: sa.Engine) -> None:
    # February, as nothing before the first partition (January 2025) can be loaded.
    _load(
        engine,
        sent("j31", "2025-01-31T23:59:59.999999+00:00", 1),
        sent("f1", "2025-02-01T00:00:00+00:00", 2),
        sent("f28", "2025-02-28T23:59:59.999999+00:00", 3),
        sent("m1", "2025-03-01T00:00:00+00:00", 4),
    )
    assert _compute(engine, at("2025-02-01 00:00"), at("2025-03-01 00:00")) == {
        ("cust_a", at("2025-02-01 00:00")): Decimal("2"),
        ("cust_a", at("2025-02-28 00:00")): Decimal("3"),
    }


def test_offsets_are_converted_to_utc_days(engine: sa.Engine) -> None:
    _load(
        engine,
        # 2025-01-31 21:00 at -05:00 is 2025-02-01 02:00 UTC: February, not January.
        sent("tz1", "2025-01-31T21:00:00-05:00", 5),
        # 2025-02-01 08:00 at +09:00 is 2025-01-31 23:00 UTC: January.
        sent("tz2", "2025-02-01T08:00:00+09:00", 6),
    )
    assert _compute(engine, *JANUARY) == {("cust_a", at("2025-01-31 00:00")): Decimal("6")}
    february = _compute(engine, at("2025-02-01 00:00"), at("2025-03-01 00:00"))
    assert february == {("cust_a", at("2025-02-01 00:00")): Decimal("5")}


def test_reloaded_duplicates_are_counted_once(engine: sa.Engine) -> None:
    line = sent("same", "2025-01-05T05:00:00+00:00", 9)
    _load(engine, line, line)
    _load(engine, line)
    assert _compute(engine, *JANUARY) == {("cust_a", at("2025-01-05 00:00")): Decimal("9")}
