"""The forecast model on crafted series: flat, weekly, trend, a spike in the history, a new
customer with three days, a customer who stopped, and an intermittent one who did not."""

import datetime as dt

import numpy as np
import pytest

from usage_billing import forecast_model

pytestmark = pytest.mark.unit

LAST_DAY = dt.date(2025, 3, 11)  # a Tuesday: the forecast is made at 00:00 on the 12th
REST_OF_MARCH = [dt.date(2025, 3, d) for d in range(12, 32)]  # 20 days
HISTORY_DAYS = 70
BUSINESS = np.array([1.3, 1.3, 1.3, 1.3, 1.3, 0.25, 0.25])  # Monday first


def days_before(last: dt.date = LAST_DAY, count: int = HISTORY_DAYS) -> list[dt.date]:
    return [last - dt.timedelta(days=count - 1 - n) for n in range(count)]


def weekday_factors(days: list[dt.date], pattern: np.ndarray) -> np.ndarray:
    return np.array([pattern[day.weekday()] for day in days])


def forecast(series: np.ndarray) -> tuple[forecast_model.Fit, float, float, float]:
    """(fit, mean, low, high) of the rest of March for one series."""
    fitted = forecast_model.fit(series[None, :], LAST_DAY)
    mean, variance = fitted.sum_forecast(REST_OF_MARCH, np.ones(len(REST_OF_MARCH)))
    low, high = forecast_model.interval(mean, variance)
    return fitted, float(mean[0]), float(low[0]), float(high[0])


def test_a_flat_series_is_forecast_flat_with_a_narrow_interval_around_the_truth() -> None:
    rng = np.random.default_rng(1)
    fitted, mean, low, high = forecast(rng.poisson(100, HISTORY_DAYS).astype(float))
    assert mean == pytest.approx(2000, rel=0.04)
    assert low < 2000 < high
    assert (high - low) / mean < 0.3
    assert np.allclose(fitted.weekly, 1, atol=0.08)
    assert not fitted.stopped[0]


def test_a_weekly_pattern_is_followed_day_by_day() -> None:
    rng = np.random.default_rng(2)
    history = 100 * weekday_factors(days_before(), BUSINESS) * rng.normal(1, 0.03, HISTORY_DAYS)
    fitted, mean, _, _ = forecast(history)
    truth = 100 * weekday_factors(REST_OF_MARCH, BUSINESS).sum()
    assert mean == pytest.approx(truth, rel=0.04)
    saturday, monday = dt.date(2025, 3, 15), dt.date(2025, 3, 17)
    expected = fitted.expected([saturday, monday], spikes=False)[0]
    assert expected[0] / expected[1] == pytest.approx(0.25 / 1.3, rel=0.1)


def test_a_trend_is_followed_better_than_a_straight_line_and_not_ignored() -> None:
    rng = np.random.default_rng(3)
    growth = 1.01 ** np.arange(HISTORY_DAYS + 20)
    usage = 100 * growth * rng.normal(1, 0.03, HISTORY_DAYS + 20)
    history, truth = usage[:HISTORY_DAYS], float(usage[HISTORY_DAYS:].sum())
    _, mean, low, high = forecast(history)
    month_to_date = history[-11:].sum()
    straight_line_rest = month_to_date / 11 * 20
    last_week_flat = history[-7:].mean() * 20
    # the trend carries on, damped (trends turn): more than half of the growth to come is in
    assert mean - last_week_flat > 0.5 * (truth - last_week_flat)
    assert abs(mean - truth) < 0.6 * abs(straight_line_rest - truth)
    assert low < truth < high


def test_a_spike_in_the_history_is_not_the_new_normal() -> None:
    rng = np.random.default_rng(4)
    history = rng.poisson(100, HISTORY_DAYS).astype(float)
    history[-2] = 1500  # a runaway job the day before yesterday
    fitted, mean, _, _ = forecast(history)
    assert fitted.level[0] < 110  # a plain 4-week mean would say 150
    month_to_date = history[-11:].sum()
    straight_line_rest = month_to_date / 11 * 20  # what MTD / elapsed share extrapolates
    assert 2000 <= mean <= 2000 * 1.2 < straight_line_rest
    # the detector's baseline for tomorrow is the ordinary day
    tomorrow = fitted.expected([dt.date(2025, 3, 12)], spikes=False)[0, 0]
    assert tomorrow < 110


def test_a_new_customer_with_three_days_gets_its_level_and_a_wide_interval() -> None:
    history = np.zeros(HISTORY_DAYS)
    history[-3:] = [48, 50, 52]
    fitted, mean, low, high = forecast(history)
    assert fitted.active_days[0] == 3
    assert np.allclose(fitted.weekly, 1)  # three days say nothing about weekdays
    assert fitted.slope[0] == 0  # nor about a trend
    assert mean == pytest.approx(1000, rel=0.05)
    assert low < 1000 < high
    assert high / low > 1.3  # three days are a weak basis: the interval says so


def test_a_customer_who_stopped_is_forecast_at_zero() -> None:
    history = np.full(HISTORY_DAYS, 100.0)
    history[-12:] = 0
    fitted, mean, low, high = forecast(history)
    assert fitted.stopped[0]
    assert mean == low == high == 0


def test_an_intermittent_customer_is_not_mistaken_for_one_who_stopped() -> None:
    history = np.zeros(HISTORY_DAYS)
    history[-4::-4] = 20  # one day in four: three days without usage are normal
    fitted, mean, _, _ = forecast(history)
    assert not fitted.stopped[0]
    assert mean == pytest.approx(20 * 20 / 4, rel=0.25)


def test_many_series_are_fitted_at_once_exactly_as_one_by_one() -> None:
    rng = np.random.default_rng(5)
    batch = rng.poisson(50, (4, HISTORY_DAYS)).astype(float)
    batch[2, :-5] = 0  # a new customer among them
    together = forecast_model.fit(batch, LAST_DAY).expected(REST_OF_MARCH)
    alone = np.vstack(
        [forecast_model.fit(row[None, :], LAST_DAY).expected(REST_OF_MARCH) for row in batch]
    )
    assert np.allclose(together, alone)


def test_an_empty_history_forecasts_nothing() -> None:
    fitted, mean, low, high = forecast(np.zeros(HISTORY_DAYS))
    assert mean == low == high == 0
    assert np.isfinite(fitted.weekly).all()


def test_no_history_columns_at_all_is_no_usage() -> None:
    fitted = forecast_model.fit(np.zeros((2, 0)), LAST_DAY)
    assert (fitted.expected(REST_OF_MARCH) == 0).all()


def test_row_quantiles_agree_with_numpy() -> None:
    rng = np.random.default_rng(6)
    values = rng.normal(size=(300, 40))
    values[rng.random(values.shape) < 0.4] = np.nan
    values[3] = np.nan  # a row without any value
    values[4, :-1] = np.nan  # a row with one
    for q in (0.25, 0.75):
        [mine] = forecast_model._nan_quantiles(values, (q,))
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            theirs = np.nanquantile(values, q, axis=1)
        assert np.allclose(mine, theirs, equal_nan=True)


def test_running_totals_agree_with_the_sum_of_every_prefix() -> None:
    rng = np.random.default_rng(7)
    days = days_before()
    series = np.stack(
        [
            rng.poisson(100 * weekday_factors(days, BUSINESS)).astype(float),
            np.linspace(50, 150, HISTORY_DAYS) + rng.normal(0, 5, HISTORY_DAYS),
            np.r_[np.zeros(60), rng.poisson(20, 10)].astype(float),  # a new customer
            np.r_[rng.poisson(30, 60), np.zeros(10)].astype(float),  # one who stopped
        ]
    )
    fitted = forecast_model.fit(series, LAST_DAY)
    remaining = np.r_[0.4, np.ones(len(REST_OF_MARCH) - 1)]  # the first day 60 % over
    means, variances = fitted.cumulative_forecast(REST_OF_MARCH, remaining)
    assert means.shape == variances.shape == (4, len(REST_OF_MARCH))
    for k in (0, 1, 9, len(REST_OF_MARCH) - 1):
        mean, variance = fitted.sum_forecast(REST_OF_MARCH[: k + 1], remaining[: k + 1])
        np.testing.assert_allclose(means[:, k], mean, rtol=1e-12)
        np.testing.assert_allclose(variances[:, k], variance, rtol=1e-12, atol=1e-9)
    assert (np.diff(means, axis=1) >= 0).all() and (np.diff(variances, axis=1) >= -1e-9).all()
