"""Spike notices: days whose usage is anomalously high for that customer, the day under way too.

A day's baseline is the forecast model fitted on the customer's own history before that day
(its robust level, weekday pattern and noise; spikes in that history are fenced out). A day is a
spike when its usage is at least `RATIO` times the baseline **and** `SIGMAS` standard deviations
above it. A day still under way is judged on its pace: the usage so far against the share of the
day's baseline expected by now, with the noise of that share, so a spike that starts at night is
flagged the same morning and an ordinary morning is not.

`commit_pace` is the pace rule for commits: 80 % of a commit used at 90 % of its period is on
track and quiet; burning at twice the usual pace alerts.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import sqlalchemy as sa

from usage_billing import forecast_model, periods, usage_history

RATIO = 2.0
SIGMAS = 4.0
MIN_HISTORY_DAYS = 7  # a customer's first week has no baseline worth the name
MIN_ARRIVALS = 3  # raw rows of a day under way before its pace is judged
PACE_ALERT_RATIO = 2.0
RECENT_DAYS = 7  # a week: every weekday once, so the weekly pattern cancels out
DAY = dt.timedelta(days=1)


def noise_of_day(expected: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Standard deviation of a whole day's usage: the fitted noise, never below counting noise
    (√expected), a tenth of the expectation, or one unit."""
    return np.maximum.reduce([sigma, np.sqrt(expected), 0.1 * expected, np.ones_like(expected)])


def anomalous(
    observed: np.ndarray,
    expected: np.ndarray,
    sigma: np.ndarray,
    completion: np.ndarray,
    arrivals: np.ndarray | None = None,
) -> np.ndarray:
    """Which days are spikes: `observed` usage so far of days `completion` (0-1] over, against
    the whole day's `expected` usage and noise `sigma`; `arrivals` counts the raw rows of a day
    under way seen so far. Arrays broadcast."""
    completion = np.clip(completion, 1e-6, 1.0)
    expected_by_now = completion * expected
    day_variance = noise_of_day(expected, sigma) ** 2
    # The part of a day that has arrived varies with the whole day (c² V) and with which of the
    # day's raw rows came early: c(1-c) E u, where u is the quantity a row carries, E / K for K
    # rows a day (estimated from the rows so far), and one unit for counts.
    rows_per_day = np.maximum(arrivals / completion, 1.0) if arrivals is not None else np.inf
    per_row = np.maximum(expected / rows_per_day, 1.0)
    arrival_variance = np.maximum(expected, 1.0) * per_row
    noise = np.sqrt(completion**2 * day_variance + completion * (1 - completion) * arrival_variance)
    excess = observed - expected_by_now
    spike = (observed > 0) & (observed >= RATIO * expected_by_now) & (excess >= SIGMAS * noise)
    # Few rows are not normal: two events where 0.2 were due is a 1-in-60 chance, which the normal
    # approximation calls 4 sigma. Counted in rows, usage is Poisson; where few are due, its tail
    # decides.
    spike &= ~unremarkable_count(observed / per_row, expected_by_now / per_row)
    # A single nightly upload is no pace at all: a day under way is judged once a few of its
    # raw rows have arrived.
    if arrivals is not None:
        spike &= (completion >= 1) | (arrivals >= MIN_ARRIVALS)
    return spike


SMALL_COUNT = 30.0  # rows due: below, the Poisson tail decides; above, the normal one is close
TAIL = 1e-3  # one in a thousand, chosen on the backtest's training months


def unremarkable_count(rows: np.ndarray, rows_due: np.ndarray) -> np.ndarray:
    """Where fewer than SMALL_COUNT rows are due: True when `rows` or more arrive by chance more
    often than TAIL (Poisson with mean `rows_due`). False where more rows are due."""
    rows, due = np.broadcast_arrays(np.ceil(np.asarray(rows, float) - 1e-9), rows_due)
    # Series without a baseline (NaN) are decided elsewhere: not small here.
    rows, due = np.nan_to_num(rows, nan=0.0), np.nan_to_num(due, nan=np.inf)
    small = due < SMALL_COUNT
    if not small.any():
        return np.zeros(rows.shape, bool)
    limit = int(min(rows[small].max(initial=0), 4 * SMALL_COUNT)) + 1
    term = np.exp(-np.where(small, due, 0.0))  # P(X = 0)
    below = np.zeros(rows.shape)  # P(X < rows)
    for k in range(limit):
        below += np.where(k < rows, term, 0.0)
        term = term * np.where(small, due, 0.0) / (k + 1)
    return small & (1.0 - below > TAIL)


@dataclass(frozen=True)
class Baseline:
    """A day's expected usage per series, its noise, and whether the history supports it."""

    expected: np.ndarray
    sigma: np.ndarray
    usable: np.ndarray


def baseline(history: np.ndarray, day: dt.date) -> Baseline:
    """The baseline of `day` from complete days before it (`history` ends the day before)."""
    fitted = forecast_model.fit(history, day - dt.timedelta(days=1))
    expected = fitted.expected([day], spikes=False)[:, 0]
    sigma = np.maximum(fitted.sigma, fitted.spread) * fitted.weekly[:, day.weekday()]
    usable = (fitted.active_days >= MIN_HISTORY_DAYS) & ~fitted.stopped
    return Baseline(expected, sigma, usable)


def detect(
    history: np.ndarray,
    day: dt.date,
    observed: np.ndarray,
    completion: float,
    arrivals: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(is_spike, expected by now) per series for `day`, `completion` of it over, `arrivals`
    raw rows of it seen (needed when the day is under way)."""
    base = baseline(history, day)
    share = np.asarray(completion)
    flags = base.usable & anomalous(observed, base.expected, base.sigma, share, arrivals)
    return flags, base.expected * completion


# --- commits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitPace:
    """Where a commit stands and whether its customer should hear about it."""

    consumed_share: float  # of the commit amount
    elapsed_share: float  # of the commit period
    projected_share: float  # consumed by the period's end (the forecast's, or at the recent pace)
    pace_ratio: float  # recent pace / usual pace
    exceeds: bool  # projected past the commit before the period ends
    burning: bool  # burning at PACE_ALERT_RATIO times the usual pace or more
    reason: str

    @property
    def alert(self) -> bool:
        return self.exceeds or self.burning


def commit_pace(
    commit_amount: Decimal,
    consumed: Decimal,
    elapsed_share: float,
    recent_daily: Decimal,
    usual_daily: Decimal,
    days_left: float,
    projected: Decimal | None = None,
) -> CommitPace:
    """Alert when the commit runs out before its period ends — by `projected`, the consumption
    projected to the period's end (a forecast's), else at the recent pace — or when the customer
    burns at PACE_ALERT_RATIO times its usual pace; being far into the commit late in the period
    is no reason on its own."""
    amount = float(commit_amount)
    if projected is None:
        at_end = float(consumed) + float(recent_daily) * max(days_left, 0.0)
    else:
        at_end = float(projected)
    usual = float(usual_daily)
    ratio = float(recent_daily) / usual if usual > 0 else (float("inf") if recent_daily else 1.0)
    exceeds = at_end > amount
    burning = ratio >= PACE_ALERT_RATIO and float(recent_daily) > 0
    reason = (
        "projected to exceed the commit before the period ends"
        if exceeds
        else f"burning at {ratio:.1f}x the usual pace"
        if burning
        else "on pace"
    )
    return CommitPace(
        consumed_share=float(consumed) / amount if amount else 0.0,
        elapsed_share=elapsed_share,
        projected_share=at_end / amount if amount else 0.0,
        pace_ratio=ratio,
        exceeds=exceeds,
        burning=burning,
        reason=reason,
    )


@dataclass(frozen=True)
class UsagePace:
    """Per series: usage per day over the last RECENT_DAYS complete days, against what the
    customer's baseline (fitted on the history before them) expected of those days."""

    recent: np.ndarray
    usual: np.ndarray
    usable: np.ndarray  # the history before the recent days supports a baseline


def recent_pace(history: usage_history.MetricHistory, as_of: dt.datetime) -> UsagePace:
    """How fast each customer of a billable metric has been using it lately, and how fast it
    usually does: the pace of a commit's burn-down. A spike in the recent days counts (it is
    spending); spikes before them are fenced out of the baseline, at their usual rate."""
    last = _last_complete_day(history, as_of)
    end = history.column(last) + 1
    start = end - RECENT_DAYS
    recent_days = [last - dt.timedelta(days=n) for n in range(RECENT_DAYS - 1, -1, -1)]
    fitted = forecast_model.fit(history.values[:, : max(start, 0)], recent_days[0] - DAY)
    return UsagePace(
        recent=history.values[:, max(start, 0) : end].sum(axis=1) / RECENT_DAYS,
        usual=fitted.expected(recent_days).mean(axis=1),
        usable=(start >= 0) & (fitted.active_days >= MIN_HISTORY_DAYS) & ~fitted.stopped,
    )


def _last_complete_day(history: usage_history.MetricHistory, as_of: dt.datetime) -> dt.date:
    """The last day whose usage is settled at `as_of`."""
    return periods.day_start(as_of - history.settling).date() - DAY


# --- spikes of a month, as of the clock ----------------------------------------------------------


@dataclass(frozen=True)
class Spike:
    """A day with anomalously high usage: known usage so far against the baseline by then."""

    customer_id: str
    billable_metric: str
    day: dt.date
    quantity: Decimal  # usage known at the clock
    expected: Decimal  # the baseline for the same part of the day
    expected_day: Decimal  # the baseline for the whole day
    complete: bool  # False: the day is still under way (judged on its pace)
    completion: float

    @property
    def ratio(self) -> float:
        return float(self.quantity) / float(self.expected) if self.expected else float("inf")

    @property
    def pace_projection(self) -> Decimal:
        """The whole day at the pace so far."""
        if self.complete or self.completion <= 0:
            return self.quantity
        with decimal.localcontext(prec=80):
            return (self.quantity / Decimal(repr(self.completion))).quantize(self.quantity)

    def as_json(self) -> dict[str, object]:
        """The `usage-billing spikes --json` row."""
        return {
            "customer_id": self.customer_id,
            "billable_metric": self.billable_metric,
            "day": self.day.isoformat(),
            "quantity": str(self.quantity),
            "expected": str(self.expected),
            "expected_day": str(self.expected_day),
            "complete": self.complete,
        }


def month_spikes(
    engine: sa.Engine,
    month: str,
    as_of: dt.datetime | None = None,
    customers: Iterable[str] | None = None,
) -> list[Spike]:
    """Spikes of the month's days so far (the day under way included), as of `as_of` (the
    pipeline clock by default), from raw metrics that occurred by then; by day, customer, metric."""
    histories, as_of = usage_history.read_month(engine, month, as_of, customers)
    return find_spikes(histories, month, as_of)


def find_spikes(
    histories: dict[str, usage_history.MetricHistory], month: str, as_of: dt.datetime
) -> list[Spike]:
    """month_spikes from histories already read (`usage_history.read_month`)."""
    start, end = periods.month_bounds(month)
    found = []
    for history in histories.values():
        found.extend(_metric_spikes(history, start.date(), end.date(), as_of))
    return sorted(found, key=lambda s: (s.day, s.customer_id, s.billable_metric))


def _metric_spikes(
    history: usage_history.MetricHistory, first: dt.date, end: dt.date, as_of: dt.datetime
) -> list[Spike]:
    found: list[Spike] = []
    day = first
    while day < end and history.customers:
        share = history.completion(day, as_of)
        column = history.column(day)
        if share <= 0 or column >= history.values.shape[1]:
            break
        window = history.values[:, max(0, column - forecast_model.WEEKLY_DAYS) : column]
        arrivals = history.arrivals.get(day) if share < 1 else None
        flags, by_now = detect(window, day, history.values[:, column], share, arrivals)
        whole_day = by_now / share
        for row in np.flatnonzero(flags):
            found.append(
                Spike(
                    customer_id=history.customers[row],
                    billable_metric=history.billable_metric,
                    day=day,
                    quantity=history.exact[row].get(day, Decimal(0)),
                    expected=history.quantize(by_now[row]),
                    expected_day=history.quantize(whole_day[row]),
                    complete=share >= 1,
                    completion=share,
                )
            )
        day += dt.timedelta(days=1)
    return found


def describe(spike: Spike) -> str:
    """One line a person reads: who, what, when, how far above the usual."""
    if spike.complete:
        return (
            f"{spike.customer_id} {spike.billable_metric} on {spike.day}: {spike.quantity} "
            f"against {spike.expected} expected ({spike.ratio:.1f}x)"
        )
    return (
        f"{spike.customer_id} {spike.billable_metric} on {spike.day} (under way, "
        f"{spike.completion:.0%} of the day): {spike.quantity} so far against {spike.expected} "
        f"expected by now ({spike.ratio:.1f}x); at this pace the day ends near "
        f"{spike.pace_projection}, a usual day is {spike.expected_day}"
    )
