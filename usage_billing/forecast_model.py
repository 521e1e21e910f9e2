"""The forecast model: a robust weekly-seasonal level with a damped trend, for many series at once.

Input is a matrix of complete daily quantities (one row per customer and billable metric, one
column per day, oldest first). For every row at once, in numpy:

1. **Activity.** Days before a series' first non-zero day are not history (a new customer); a run
   of zeros at the end that its own history makes implausible (`STOP_PROBABILITY`) means the
   customer stopped, and the series is forecast at zero.
2. **Spikes are fenced, not learnt.** Each value above a Tukey far-out fence of the series'
   non-zero values (Q3 + k·IQR) is clipped to the fence, before and after removing the weekly
   pattern, so a spike in the history moves neither the level nor the weekday pattern. What the
   fence cut off returns only as an average rate (`spike_allowance`, each spike capped at
   `SPIKE_EXCESS_CAP` usual days): spikes recur, but one is never the new normal.
3. **Weekly pattern.** Weekday means of the clipped values over the last eight weeks, relative to
   their average, shrunk towards 1 as much as their noise calls for (empirical Bayes); none before
   `MIN_WEEKLY_DAYS` of history.
4. **Level and trend.** The trend is a straight line through eight weeks of de-seasonalised
   values, shrunk by its significance (its standard error inflated for autocorrelated residuals)
   and damped over the horizon; the level is the recency-weighted mean of the last four weeks
   (half-life `HALF_LIFE_DAYS`) moved along that trend to the last day.
5. **Uncertainty.** Day-to-day noise, the spike rate, the level's and the slope's standard errors
   and a level drift that grows with the horizon (`DRIFT`); a horizon's sum gets a log-normal
   interval scaled by `INTERVAL_SCALE`. The constants were set on the backtest's training months
   and scored on held-out months (docs/benchmarks.md).

Everything here is floats; callers turn results into decimals at the edges.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import numpy as np

LEVEL_DAYS = 28
WEEKLY_DAYS = 56
HALF_LIFE_DAYS = 10.0
FENCE_IQRS = 3.0
WEEKDAY_SHRINK_WEEKS = 0.5
MIN_WEEKLY_DAYS = 14  # two weeks before a weekday pattern means anything
TREND_DAYS = 56
MIN_TREND_DAYS = 28
TREND_SE_INFLATION = 3.0  # residuals are autocorrelated (business wanders): slopes are less sure
DRIFT = 0.03  # unmodelled daily drift of the level, relative: uncertainty grows with the horizon
TREND_DAMPING = 0.99
STOP_PROBABILITY = 1e-3
SPIKE_EXCESS_CAP = 4.0  # a spike adds at most this many usual days to the spike allowance
INTERVAL_SCALE = 1.25
Z80 = 1.2815515655446004  # standard normal quantile of 0.9: an 80 % two-sided interval


@dataclass(frozen=True)
class Fit:
    """Per series (arrays of length S): the model as of the day after the history's last day."""

    first_day: dt.date  # of the history's first column
    last_day: dt.date  # the history's last (complete) day
    level: np.ndarray  # de-seasonalised level at last_day
    slope: np.ndarray  # per day, shrunk by significance
    weekly: np.ndarray  # (S, 7) multipliers, Monday first, mean 1
    sigma: np.ndarray  # de-seasonalised day-to-day noise
    level_se: np.ndarray
    slope_se: np.ndarray
    active_days: np.ndarray  # days of history since the first non-zero one
    stopped: np.ndarray  # bool: usage stopped, forecast zero
    spike_allowance: np.ndarray  # de-seasonalised usage per day above the fence, on average
    spike_m2: np.ndarray  # its mean square: spikes are rare and big
    spread: np.ndarray  # interquartile spread of de-seasonalised days, as a standard deviation

    def horizon(self, days: list[dt.date], spikes: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(S, H) expected quantities for later days (an ordinary day's when not `spikes`), and
        the damped trend's reach for each day."""
        steps = np.array([(day - self.last_day).days for day in days], dtype=float)
        reach = np.array([damped(h) for h in steps])
        weekdays = np.array([day.weekday() for day in days])
        path = np.maximum(self.level[:, None] + self.slope[:, None] * reach[None, :], 0.0)
        if spikes:  # a spike is not the new normal, but spikes recur at their usual rate
            path = path + self.spike_allowance[:, None]
        path[self.stopped] = 0.0
        return path * self.weekly[:, weekdays], reach

    def expected(self, days: list[dt.date], spikes: bool = True) -> np.ndarray:
        """(S, H) expected quantity of each later day."""
        return self.horizon(days, spikes)[0]

    def sum_forecast(
        self, days: list[dt.date], remaining: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance (per series) of the sum over `days` of each day's still unknown
        share `remaining` (H,), e.g. 1 for a future day, 0.6 for a day 40 % over."""
        if not days:
            zeros = np.zeros_like(self.level)
            return zeros, zeros
        path, reach = self.horizon(days)
        weekdays = np.array([day.weekday() for day in days])
        weights = self.weekly[:, weekdays] * remaining[None, :]
        mean = (path * remaining[None, :]).sum(axis=1)
        day_variance = self.sigma**2 + self.spike_m2
        noise = (day_variance[:, None] * self.weekly[:, weekdays] ** 2 * remaining).sum(axis=1)
        level = (weights.sum(axis=1) * self.level_se) ** 2
        trend = ((weights * reach[None, :]).sum(axis=1) * self.slope_se) ** 2
        # a level that random-walks: day h's deviation is shared by every later day
        steps = np.array([(day - self.last_day).days for day in days])
        shared = np.minimum.outer(steps, steps)
        drift = np.einsum("sh,hk,sk->s", path * remaining, shared, path * remaining) * DRIFT**2
        variance = np.where(self.stopped, 0.0, noise + level + trend + drift)
        return mean, variance

    def cumulative_forecast(
        self, days: list[dt.date], remaining: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance (S, H) of every running sum: column k is `sum_forecast` of the
        first k + 1 days (`days` consecutive and ascending), in O(S·H) instead of O(S·H³)."""
        if not days:
            empty = np.zeros((len(self.level), 0))
            return empty, empty
        path, reach = self.horizon(days)
        weekdays = np.array([day.weekday() for day in days])
        weights = self.weekly[:, weekdays] * remaining[None, :]
        share = path * remaining[None, :]
        mean = share.cumsum(axis=1)
        day_variance = self.sigma**2 + self.spike_m2
        noise = (day_variance[:, None] * self.weekly[:, weekdays] ** 2 * remaining).cumsum(axis=1)
        level = (weights.cumsum(axis=1) * self.level_se[:, None]) ** 2
        trend = ((weights * reach[None, :]).cumsum(axis=1) * self.slope_se[:, None]) ** 2
        # The drift term sum_{h,j<=k} a_h a_j min(s_h, s_j) grows by a_k^2 s_k + 2 a_k sum_{j<k}
        # a_j s_j with each day k, as the steps s are ascending.
        steps = np.array([(day - self.last_day).days for day in days], dtype=float)[None, :]
        before = (share * steps).cumsum(axis=1) - share * steps
        drift = (share**2 * steps + 2 * share * before).cumsum(axis=1) * DRIFT**2
        variance = np.where(self.stopped[:, None], 0.0, noise + level + trend + drift)
        return mean, variance


def damped(steps: float) -> float:
    """Sum of TREND_DAMPING**i for i = 1..steps: how far a damped trend carries."""
    if steps <= 0:
        return 0.0
    return TREND_DAMPING * (1 - TREND_DAMPING**steps) / (1 - TREND_DAMPING)


def interval(mean: np.ndarray, variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """80 % interval of a non-negative sum with this mean and variance: log-normal, right-skewed
    like usage itself, widened by INTERVAL_SCALE."""
    safe = np.maximum(mean, 1e-12)
    sigma2 = np.log1p(variance * INTERVAL_SCALE**2 / safe**2)
    mu = np.log(safe) - sigma2 / 2
    spread = Z80 * np.sqrt(sigma2)
    low = np.where(mean > 0, np.exp(mu - spread), 0.0)
    high = np.where(mean > 0, np.exp(mu + spread), 0.0)
    return low, high


def _nan_quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per row, the quantiles of its non-NaN values (linear interpolation, as numpy's default);
    NaN for a row without any. np.nanquantile loops over rows in Python: this sorts once."""
    ordered = np.sort(np.where(np.isnan(values), np.inf, values), axis=1)
    count = (~np.isnan(values)).sum(axis=1)
    rows = np.arange(values.shape[0])
    found = []
    for q in qs:
        position = q * np.maximum(count - 1, 0)
        below = np.floor(position).astype(int)
        above = np.minimum(below + 1, np.maximum(count - 1, 0))
        low, high = ordered[rows, below], ordered[rows, above]
        with np.errstate(invalid="ignore"):
            value = low + (position - below) * np.where(high > low, high - low, 0.0)
        found.append(np.where(count > 0, value, np.nan))
    return found


def _fence(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Upper Tukey far-out fence of each row's usable non-zero values (inf when too few)."""
    nonzero = np.where(usable & (values > 0), values, np.nan)
    q1, q3 = _nan_quantiles(nonzero, (0.25, 0.75))
    enough = np.sum(~np.isnan(nonzero), axis=1) >= 4
    return np.where(enough & ~np.isnan(q3), q3 + FENCE_IQRS * (q3 - q1), np.inf)


def _spread(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """IQR / 1.349 of each row's usable values: the standard deviation a normal with that IQR
    has, which spikes cannot inflate and heavy tails do widen."""
    q1, q3 = _nan_quantiles(np.where(usable, values, np.nan), (0.25, 0.75))
    return np.nan_to_num((q3 - q1) / 1.349)


def _trailing_zeros(values: np.ndarray) -> np.ndarray:
    nonzero = values[:, ::-1] > 0
    run = np.argmax(nonzero, axis=1)
    return np.where(nonzero.any(axis=1), run, values.shape[1])


def fit(history: np.ndarray, last_day: dt.date) -> Fit:
    """Fit every row of `history` (S, T): complete days ending at `last_day`, oldest first."""
    values = np.nan_to_num(np.asarray(history, dtype=float), nan=0.0).clip(min=0.0)
    if values.shape[1] == 0:  # no history at all: a day without usage says the same
        values = np.zeros((values.shape[0], 1))
    days = values.shape[1]
    first_day = last_day - dt.timedelta(days=days - 1)
    columns = np.arange(days)
    has_usage = (values > 0).any(axis=1)
    first_active = np.where(has_usage, np.argmax(values > 0, axis=1), days)
    active = columns[None, :] >= first_active[:, None]
    recent = active & (columns[None, :] >= days - LEVEL_DAYS)
    seasonal = active & (columns[None, :] >= days - WEEKLY_DAYS)
    weekdays = np.array([(first_day + dt.timedelta(days=int(c))).weekday() for c in columns])

    clipped = np.minimum(values, _fence(values, recent)[:, None])
    weekly = _weekly(clipped, seasonal, weekdays)
    seasonal_factor = weekly[:, weekdays]
    deseasonalised = values / seasonal_factor
    flat = np.minimum(deseasonalised, _fence(deseasonalised, seasonal)[:, None])
    seasonal_days = np.maximum(seasonal.sum(axis=1), 1)
    # What spikes add on average; one freak day (a runaway job at 50x) counts as a big spike, not
    # as fifty: a single event says little about how often, and how big, the next one will be.
    typical = np.where(seasonal, flat, 0.0).sum(axis=1) / seasonal_days
    excess = np.minimum(
        np.where(seasonal, deseasonalised - flat, 0.0), SPIKE_EXCESS_CAP * typical[:, None]
    )

    trend_window = active & (columns[None, :] >= days - TREND_DAYS)
    level, slope, sigma, level_se, slope_se = _level_and_trend(flat, recent, trend_window, days)
    active_days = days - first_active
    stopped = _stopped(values, active, first_active, days)
    level = np.where(stopped | ~has_usage, 0.0, level)
    return Fit(
        first_day=first_day,
        last_day=last_day,
        level=level,
        slope=np.where(stopped | ~has_usage, 0.0, slope),
        weekly=weekly,
        sigma=sigma,
        level_se=level_se,
        slope_se=slope_se,
        active_days=active_days,
        stopped=stopped,
        spike_allowance=excess.sum(axis=1) / seasonal_days,
        spike_m2=(excess**2).sum(axis=1) / seasonal_days,
        spread=_spread(deseasonalised, seasonal),
    )


def _weekly(clipped: np.ndarray, usable: np.ndarray, weekdays: np.ndarray) -> np.ndarray:
    """Weekday multipliers (mean 1): weekday means relative to their average, shrunk towards 1
    by how many weeks back each; all 1 before MIN_WEEKLY_DAYS of history."""
    count = clipped.shape[0]
    sums = np.zeros((count, 7))
    counts = np.zeros((count, 7))
    for weekday in range(7):
        cols = usable & (weekdays == weekday)[None, :]
        sums[:, weekday] = np.where(cols, clipped, 0.0).sum(axis=1)
        counts[:, weekday] = cols.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without history: all NaN
        means = sums / counts
        overall = np.nanmean(np.where(counts > 0, means, np.nan), axis=1)
        raw = np.nan_to_num(means / overall[:, None], nan=1.0)
        # Empirical Bayes: each weekday's factor is shrunk towards 1 as much as its noise (the
        # day-to-day spread around the weekday means, over the days behind it) calls for.
        deviations = np.zeros(count)
        for weekday in range(7):
            cols = usable & (weekdays == weekday)[None, :]
            deviations += np.where(cols, (clipped - means[:, [weekday]]) ** 2, 0.0).sum(axis=1)
        day_variance = deviations / np.maximum(counts.sum(axis=1) - 7, 1) / overall**2
        noise = day_variance[:, None] / (counts + WEEKDAY_SHRINK_WEEKS)
        signal = np.maximum(((raw - 1) ** 2).mean(axis=1) - noise.mean(axis=1), 0.0)[:, None]
        shrink = np.nan_to_num(signal / (signal + noise), nan=0.0)
    weekly = 1 + (raw - 1) * shrink
    enough = usable.sum(axis=1) >= MIN_WEEKLY_DAYS
    weekly = np.where(np.isfinite(weekly) & (overall[:, None] > 0) & enough[:, None], weekly, 1.0)
    weekly = np.maximum(weekly, 0.05)
    return weekly / weekly.mean(axis=1, keepdims=True)


def _line(
    flat: np.ndarray, weights: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of each row on x: (x mean, y mean, slope, sxx, weight total)."""
    total = weights.sum(axis=1)
    safe_total = np.where(total > 0, total, 1.0)
    x_mean = (weights * x).sum(axis=1) / safe_total
    y_mean = (weights * flat).sum(axis=1) / safe_total
    dx = x[None, :] - x_mean[:, None]
    sxx = (weights * dx**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (weights * dx * (flat - y_mean[:, None])).sum(axis=1) / sxx
    return x_mean, y_mean, np.where(sxx > 0, slope, 0.0), sxx, total


def _level_and_trend(
    flat: np.ndarray, recent: np.ndarray, trend_window: np.ndarray, days: int
) -> tuple[np.ndarray, ...]:
    """The trend: a straight line through the trend window, shrunk by its significance. The
    level: the recency-weighted mean of the last LEVEL_DAYS moved along that trend to the last
    day. Returns level, slope, sigma, level_se, slope_se."""
    x = np.arange(days, dtype=float) - (days - 1)
    n_trend = trend_window.sum(axis=1)
    _, t_mean, raw_slope, t_sxx, _ = _line(flat, trend_window.astype(float), x)
    trend_ok = (n_trend >= MIN_TREND_DAYS) & (t_sxx > 0)
    t_residuals = flat - t_mean[:, None] - raw_slope[:, None] * (x[None, :] - x.mean())
    t_sigma = np.sqrt(
        np.where(trend_window, t_residuals**2, 0).sum(axis=1) / np.maximum(n_trend - 2, 1)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        slope_se = np.where(trend_ok, TREND_SE_INFLATION * t_sigma / np.sqrt(t_sxx), 0.0)
        significance = raw_slope**2 / (raw_slope**2 + slope_se**2)
    slope = np.where(trend_ok, raw_slope * np.nan_to_num(significance), 0.0)

    weights = np.where(recent, 0.5 ** (-x / HALF_LIFE_DAYS)[None, :], 0.0)
    x_mean, y_mean, _, _, total = _line(flat, weights, x)
    n = recent.sum(axis=1)
    level = np.where(n > 0, np.maximum(y_mean - slope * x_mean, 0.0), 0.0)
    residuals = flat - (level[:, None] + slope[:, None] * x[None, :])
    safe_total = np.where(total > 0, total, 1.0)
    dof = np.maximum(n - 1, 1)
    sigma = np.sqrt((weights * residuals**2).sum(axis=1) / safe_total * n / dof)
    sigma = np.where(n > 1, sigma, level)  # one day of history: as uncertain as it is big
    n_eff = total**2 / np.maximum((weights**2).sum(axis=1), 1e-300)
    level_se = sigma / np.sqrt(np.maximum(n_eff, 1))
    return level, slope, sigma, level_se, slope_se


def _stopped(
    values: np.ndarray, active: np.ndarray, first_active: np.ndarray, days: int
) -> np.ndarray:
    """A trailing run of zeros that the series' own share of zero days makes implausible."""
    run = _trailing_zeros(values)
    before = active.copy()
    before[np.arange(days)[None, :] >= (days - run)[:, None]] = False
    n_before = before.sum(axis=1)
    zeros_before = (before & (values == 0)).sum(axis=1)
    p_zero = (zeros_before + 0.5) / (n_before + 1)
    with np.errstate(divide="ignore"):
        log_chance = run * np.log(p_zero)
    return (run >= 2) & (n_before > 0) & (log_chance < np.log(STOP_PROBABILITY))
