"""Month-end forecasts per customer and billable metric, as of the pipeline clock.

`forecast_month(engine, month)` is the one call: for every customer with usage, per billable
metric, the month to date, the projected month-end quantity with an 80 % interval, and the daily
path behind it (known usage, expected usage per day), plus `expected_on(day)` for days after the
month (a commit's burn-down). `customers=[...]` restricts the work to those customers (a portal
page, an invoice preview).

The inputs are the collectors' daily usage as of the clock (`usage_history`: later raw rows are
invisible), and the model is `forecast_model` (docs/architecture.md, "Insights"). Quantities are
decimals at the edges: the month to date is exact; projections are rounded to the metric's own
precision (whole units for counts, cents for money), the interval outwards, and never below what
is already known.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

import numpy as np
import sqlalchemy as sa

from usage_billing import forecast_model, periods, usage_history
from usage_billing.usage_history import DAY, MetricHistory


@dataclass(frozen=True)
class DayForecast:
    """One day of the month: usage known at the clock, the expected total of the day, and the
    month's expected running total at the day's end with its 80 % interval (the forecast band:
    equal to the known running total for days that are over)."""

    day: dt.date
    known: Decimal
    expected: Decimal
    complete: bool
    cumulative: Decimal
    cumulative_low: Decimal
    cumulative_high: Decimal


@dataclass(frozen=True)
class MetricForecast:
    """A customer's month-end forecast for one billable metric."""

    customer_id: str
    billable_metric: str
    month: str
    as_of: dt.datetime
    month_to_date: Decimal
    projected: Decimal
    low: Decimal  # 80 % interval
    high: Decimal
    days: tuple[DayForecast, ...]
    # the fitted model, for days after the month (expected_on)
    last_complete_day: dt.date
    level: float
    slope: float
    spike_allowance: float
    weekly: tuple[float, ...]
    stopped: bool

    def expected_on(self, day: dt.date) -> Decimal:
        """Expected usage of any day after the last complete one (e.g. next month's days)."""
        steps = (day - self.last_complete_day).days
        if steps <= 0 or self.stopped:
            return Decimal(0)
        reach = forecast_model.damped(steps)
        value = max(self.level + self.slope * reach, 0.0) + self.spike_allowance
        return Decimal(repr(value * self.weekly[day.weekday()]))

    def as_json(self) -> dict[str, str]:
        """The `usage-billing forecast --json` row: decimal strings."""
        return {
            "customer_id": self.customer_id,
            "billable_metric": self.billable_metric,
            "month_to_date": str(self.month_to_date),
            "projected": str(self.projected),
            "low": str(self.low),
            "high": str(self.high),
        }


def forecast_month(
    engine: sa.Engine,
    month: str,
    as_of: dt.datetime | None = None,
    customers: Iterable[str] | None = None,
) -> list[MetricForecast]:
    """Every (customer, billable metric) with usage in the month or the weeks before it, as of
    `as_of` (the pipeline clock by default), sorted by customer and metric."""
    histories, as_of = usage_history.read_month(engine, month, as_of, customers)
    return forecast_histories(histories, month, as_of)


def forecast_histories(
    histories: dict[str, MetricHistory], month: str, as_of: dt.datetime
) -> list[MetricForecast]:
    """forecast_month from histories already read (`usage_history.read_month`)."""
    forecasts = []
    for history in histories.values():
        forecasts.extend(forecast_metric(history, month, as_of))
    return sorted(forecasts, key=lambda f: (f.customer_id, f.billable_metric))


def _month_days(month: str) -> list[dt.date]:
    start, end = periods.month_bounds(month)
    return [start.date() + dt.timedelta(days=n) for n in range((end - start).days)]


def forecast_metric(history: MetricHistory, month: str, as_of: dt.datetime) -> list[MetricForecast]:
    """Forecasts of one billable metric's customers (see forecast_month)."""
    if not history.customers:
        return []
    month_days = _month_days(month)
    completion = np.array([history.completion(day, as_of) for day in month_days])
    # the model reads complete days only: up to the day before the first incomplete one
    incomplete = [day for day, share in zip(month_days, completion, strict=True) if share < 1]
    last_complete = (incomplete[0] if incomplete else month_days[-1] + DAY) - DAY
    fitted = forecast_model.fit(
        history.values[:, : history.column(last_complete) + 1], last_complete
    )
    open_days = [day for day in month_days if day > last_complete]
    still_unknown = 1 - completion[len(month_days) - len(open_days) :]
    mean, variance = fitted.sum_forecast(open_days, still_unknown)
    low, high = forecast_model.interval(mean, variance)
    running = _Running(fitted, open_days, still_unknown)
    expected = fitted.expected(open_days) if open_days else np.zeros((len(history.customers), 0))
    found = []
    for row, customer in enumerate(history.customers):
        known = [history.exact[row].get(day, Decimal(0)) for day in month_days]
        mtd = sum(known, Decimal(0))
        if mtd == 0 and mean[row] == 0 and not history.values[row].any():
            continue
        rest = [float(e) * float(u) for e, u in zip(expected[row], still_unknown, strict=True)]
        month_end = _Band(
            _decimal(history, mtd, mean[row], ROUND_HALF_UP),
            _decimal(history, mtd, low[row], ROUND_FLOOR),
            _decimal(history, mtd, max(high[row], mean[row]), ROUND_CEILING),
        )
        found.append(
            MetricForecast(
                customer_id=customer,
                billable_metric=history.billable_metric,
                month=month,
                as_of=as_of,
                month_to_date=mtd,
                projected=month_end.expected,
                low=month_end.low,
                high=month_end.high,
                days=_days(
                    history,
                    month_days,
                    known,
                    rest,
                    completion,
                    running.row(row, history),
                    month_end,
                ),
                last_complete_day=last_complete,
                level=float(fitted.level[row]),
                slope=float(fitted.slope[row]),
                spike_allowance=float(fitted.spike_allowance[row]),
                weekly=tuple(float(w) for w in fitted.weekly[row]),
                stopped=bool(fitted.stopped[row]),
            )
        )
    return found


def _decimal(history: MetricHistory, known: Decimal, rest: float, rounding: str) -> Decimal:
    """known + rest at the metric's precision; never below what is known."""
    with decimal.localcontext(prec=80):
        total = known + Decimal(repr(max(float(rest), 0.0)))
    return max(history.quantize(total, rounding), known)


@dataclass(frozen=True)
class _Band:
    """An expected quantity with its 80 % interval."""

    expected: Decimal
    low: Decimal
    high: Decimal


class _Running:
    """The month's running total over its open days, mean and 80 % interval, for every series."""

    def __init__(self, fitted: forecast_model.Fit, open_days: list[dt.date], unknown: np.ndarray):
        self.mean, variance = fitted.cumulative_forecast(open_days, unknown)
        self.low, self.high = forecast_model.interval(self.mean, variance)

    def row(self, row: int, history: MetricHistory) -> Callable[[int, Decimal], _Band]:
        """For one series: the band of the running total at the end of the k-th open day, on top
        of `known` (the usage known up to and including that day)."""

        def band(k: int, known: Decimal) -> _Band:
            mean, high = self.mean[row, k], max(self.high[row, k], self.mean[row, k])
            return _Band(
                _decimal(history, known, mean, ROUND_HALF_UP),
                _decimal(history, known, self.low[row, k], ROUND_FLOOR),
                _decimal(history, known, high, ROUND_CEILING),
            )

        return band


def _days(
    history: MetricHistory,
    month_days: list[dt.date],
    known: list[Decimal],
    rest: list[float],
    completion: np.ndarray,
    running: Callable[[int, Decimal], _Band],
    month_end: _Band,
) -> tuple[DayForecast, ...]:
    first_open = len(month_days) - len(rest)
    found, known_so_far = [], Decimal(0)
    for n, (day, value) in enumerate(zip(month_days, known, strict=True)):
        known_so_far += value
        if n < first_open:
            band = _Band(known_so_far, known_so_far, known_so_far)
        elif n == len(month_days) - 1:
            band = month_end  # the band ends exactly at the month's interval
        else:
            band = running(n - first_open, known_so_far)
        found.append(
            DayForecast(
                day=day,
                known=value,
                expected=(
                    _decimal(history, value, rest[n - first_open], ROUND_HALF_UP)
                    if n >= first_open
                    else value
                ),
                complete=bool(completion[n] >= 1),
                cumulative=band.expected,
                cumulative_low=band.low,
                cumulative_high=band.high,
            )
        )
    return tuple(found)
