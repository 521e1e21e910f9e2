"""Nasty usage for the insights: huge quantities with many decimal places, a customer whose only
usage is after the clock, a clock exactly at midnight, a month not started."""

import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.helpers import sent
from tests.insights.conftest import CLOCK, MONTH, steady_events
from usage_billing import forecasting, loader, periods, spikes

pytestmark = pytest.mark.adversarial


def test_huge_quantities_with_many_decimal_places_stay_exact_and_print_as_decimals(
    engine: sa.Engine,
) -> None:
    lines, day = [], dt.date(2025, 1, 10)
    while day < CLOCK.date():
        value = "123456789012345.123456789012" if day.day != 19 else "9876543210987654.1"
        lines.append(sent(f"big-{day}", f"{day}T06:00:00+00:00", value, customer_id="cust_big"))
        day += dt.timedelta(days=1)
    lines.append(sent("big-today", f"{CLOCK.date()}T01:00:00+00:00", "1e3", customer_id="cust_big"))
    assert loader.load_lines(engine, lines, source="big").quarantined == 0
    [forecast] = forecasting.forecast_month(engine, MONTH, CLOCK)
    assert forecast.month_to_date == sum(
        (Decimal(json.loads(line)["value"]) for line in lines[-20:]), Decimal(0)
    )
    for text in forecast.as_json().values():
        assert "E" not in text and "e" not in text.replace("cust_big", "").replace(
            "events_sent", ""
        )
    assert -forecast.projected.as_tuple().exponent <= 6
    assert forecast.month_to_date <= forecast.low <= forecast.projected <= forecast.high
    [spike] = spikes.month_spikes(engine, MONTH, CLOCK)  # the 19th, at 80 times the usual
    assert spike.day == dt.date(2025, 3, 19) and spike.quantity == Decimal("9876543210987654.1")
    assert spike.pace_projection == spike.quantity
    json.dumps(spike.as_json())


def test_a_customer_whose_usage_is_all_after_the_clock_does_not_exist_yet(
    engine: sa.Engine,
) -> None:
    lines = list(steady_events("cust_later", CLOCK.date(), dt.date(2025, 3, 25), rows=24, value=9))
    loader.load_lines(engine, [line for line in lines if "T09:" not in line], source="t")
    found = forecasting.forecast_month(engine, MONTH, CLOCK)
    assert [f.customer_id for f in found] == ["cust_later"]  # its rows up to 09:00 today
    assert found[0].month_to_date == 9 * 9
    # a microsecond before midnight: nothing of the day has happened
    before = CLOCK.replace(hour=0, minute=0) - dt.timedelta(microseconds=1)
    assert forecasting.forecast_month(engine, MONTH, before) == []
    assert spikes.month_spikes(engine, MONTH, before) == []


def test_a_month_that_has_not_started_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(periods.MonthError, match="has not started"):
        forecasting.forecast_month(engine, "2025-04", CLOCK)
    with pytest.raises(periods.MonthError, match="has not started"):
        spikes.month_spikes(engine, "2025-04", CLOCK)
