"""The spike detector on crafted days (complete, on the weekday pattern, under way, a night's
upload, a new customer), and the pace rule for commits."""

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest

from tests.insights.test_forecast_model import BUSINESS, HISTORY_DAYS, days_before, weekday_factors
from usage_billing import spikes

pytestmark = pytest.mark.unit

TODAY = dt.date(2025, 3, 12)  # a Wednesday
MORNING = 9 / 24


def history(level: float = 100, seed: int = 1, pattern: np.ndarray | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    days = days_before(TODAY - dt.timedelta(days=1))
    factors = weekday_factors(days, pattern) if pattern is not None else np.ones(HISTORY_DAYS)
    return (level * factors * rng.normal(1, 0.08, HISTORY_DAYS)).round()


def is_spike(
    past: np.ndarray,
    observed: float,
    day: dt.date = TODAY,
    completion: float = 1.0,
    arrivals: int | None = None,
) -> bool:
    rows = None if arrivals is None else np.array([arrivals])
    flags, _ = spikes.detect(past[None, -56:], day, np.array([observed]), completion, rows)
    return bool(flags[0])


def test_a_day_at_five_times_the_usual_is_a_spike_and_an_ordinary_busy_day_is_not() -> None:
    past = history()
    assert is_spike(past, 500)
    assert not is_spike(past, 130)
    assert not is_spike(past, 60)  # drops are not spikes


def test_the_baseline_is_the_weekday_of_the_customer() -> None:
    past = history(pattern=BUSINESS)
    monday, saturday = dt.date(2025, 3, 17), dt.date(2025, 3, 15)
    ordinary_monday = 130
    assert not is_spike(np.append(past, [130, 130, 130, 25, 25]), ordinary_monday, monday)
    # the same usage on a Saturday, when this customer usually does a fifth of it
    assert is_spike(np.append(past, [130, 130, 130]), ordinary_monday, saturday)


def test_a_spike_in_the_history_does_not_hide_the_next_one() -> None:
    past = history()
    past[-1] = 1000  # yesterday
    assert not is_spike(past, 110)
    assert is_spike(past, 500)


def test_a_day_under_way_is_judged_on_its_pace_by_the_morning() -> None:
    past = history()  # about 100 a day, arriving one by one
    by_nine = 100 * MORNING  # 37.5 expected by 09:00
    assert is_spike(past, 4 * by_nine, completion=MORNING, arrivals=150)
    assert not is_spike(past, 1.3 * by_nine, completion=MORNING, arrivals=49)
    # an early hour judges nothing: 3 arrivals at 01:00 is a fast pace but no evidence
    assert not is_spike(past, 3, completion=1 / 24, arrivals=3)


def test_a_nightly_upload_is_not_a_pace() -> None:
    past = history()
    # the whole day's usage arrives at 02:00 in one upload, as every day
    assert not is_spike(past, 100, completion=MORNING, arrivals=1)
    # the same amount in many rows is a real pace
    assert is_spike(past, 100, completion=MORNING, arrivals=100)


def test_a_couple_of_events_where_a_fraction_was_due_is_not_a_spike() -> None:
    """At the month's close, Fin's last day has settled for 30 minutes: 0.17 resolutions were
    due, two came (a 1-in-80 chance, and thousands of series get that chance every hour)."""
    usual_day, settled = np.array([8.0]), np.array(0.5 / 24)
    rows = np.array([300])  # support events of those minutes: plenty of rows, few resolutions
    for seen in (1.0, 2.0):
        assert not spikes.anomalous(np.array([seen]), usual_day, np.array([2.0]), settled, rows)
    assert spikes.anomalous(np.array([9.0]), usual_day, np.array([2.0]), settled, rows)


def test_a_few_units_over_a_small_usual_day_need_poisson_rarity() -> None:
    usual = np.array([1.0, 1.0, 1.0])
    flagged = spikes.anomalous(np.array([4.0, 5.0, 8.0]), usual, usual, np.array(1.0))
    assert flagged.tolist() == [False, False, True]  # P(X >= 5 | 1) = 0.0037; >= 8: 1e-5
    # series without a day or a baseline yet (NaN) beside ordinary ones: no error, no spike
    observed, usual = np.array([np.nan, 3.0, 1.0]), np.array([1.0, np.nan, 1.0])
    nothing = spikes.anomalous(observed, usual, usual, np.array(0.5), np.array([3, 3, 3]))
    assert nothing.tolist() == [False, False, False]


def test_a_customer_in_its_first_week_has_no_baseline_and_no_spikes() -> None:
    past = np.zeros(HISTORY_DAYS)
    past[-4:] = [10, 12, 11, 9]
    assert not is_spike(past, 500)
    past[-7:] = [10, 12, 11, 9, 10, 11, 10]
    assert is_spike(past, 500)


def test_a_customer_that_stopped_and_came_back_is_not_a_spike_of_nothing() -> None:
    past = history()
    past[-20:] = 0
    assert not is_spike(past, 100)


def test_commit_pace_eighty_percent_at_ninety_percent_of_the_period_is_on_pace() -> None:
    # 365-day commit of 10,000; 328.5 days in, 8,000 consumed at a steady 24.35 a day
    usual = Decimal("24.35")
    pace = spikes.commit_pace(Decimal(10_000), Decimal(8_000), 0.9, usual, usual, 36.5)
    assert not pace.alert
    assert pace.consumed_share == pytest.approx(0.8)
    assert pace.projected_share == pytest.approx(0.889, abs=0.001)
    assert pace.reason == "on pace"


def test_commit_pace_twice_the_usual_pace_alerts() -> None:
    usual = Decimal("24.35")
    pace = spikes.commit_pace(Decimal(10_000), Decimal(5_000), 0.5, 2 * usual, usual, 182)
    assert pace.alert
    assert pace.pace_ratio == pytest.approx(2.0)
    # the same customer at 1.5x: still inside the commit at the end, and no burn alert
    calm = spikes.commit_pace(Decimal(10_000), Decimal(3_000), 0.5, usual * 3 / 2, usual, 182)
    assert not calm.alert


def test_commit_pace_alerts_when_the_commit_runs_out_before_the_period_ends() -> None:
    usual = Decimal(40)
    pace = spikes.commit_pace(Decimal(10_000), Decimal(8_000), 0.7, usual, usual, 110)
    assert pace.alert
    assert pace.projected_share > 1
    assert "exceed" in pace.reason
