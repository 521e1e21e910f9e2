"""Money projections from the usage forecast: what a month's invoice will come to, with an 80 %
interval, and the path along which a commit burns down.

`forecasting` projects each billable metric's month-end quantity; a bill is the rate card's price
of those quantities. Pricing is monotone — more usage never costs less, tiers included — so the
price of a metric's projected quantity is its projected amount, and the prices of the bounds of
its 80 % interval bound that amount with the same probability. A customer's projected total is
the sum of its metrics' amounts (each rounded to cents, as an invoice's lines are), and the
total's interval is the sum of the metrics' bounds (docs/architecture.md, "Projections", says
why that is honest). A month's projection never falls below what the month has billed already.

`Forecast` is the one plug: `invoice`, `commits`, the customer portal and the Dagster assets all
call one. `month_forecast` builds the one backed by the usage forecast; `straight_line` is the
fallback where it has nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import numpy as np
import sqlalchemy as sa

from usage_billing import forecasting, periods, spikes, usage_history
from usage_billing.forecasting import MetricForecast
from usage_billing.pricing import EXACT, PricingModel, RateCard

Path = tuple[tuple[dt.datetime, float], ...]


@dataclass(frozen=True)
class MoneyPace:
    """A customer's spending per day lately (the last week) and usually (what its baseline
    expected of that week), in the rate card's currency."""

    recent_daily: Decimal
    usual_daily: Decimal


@dataclass(frozen=True)
class Projection:
    """A month's projected total, with its 80 % interval and its path when a forecast gives them.

    `path` holds (instant, share) points, ascending: the share of what the month still has to
    accrue (total - month to date) that has accrued by that instant, ending at the month's end
    with 1. Empty: it accrues evenly over the rest of the month. `pace` is the customer's
    spending pace (the current month only)."""

    total: Decimal
    low: Decimal | None = None
    high: Decimal | None = None
    path: Path = ()
    pace: MoneyPace | None = None


class Forecast(Protocol):
    """Projects a month's total from its month-to-date total as of an instant; None when it
    cannot. A month after the instant's month projects from nothing (month_to_date 0)."""

    def __call__(
        self, customer_id: str, month: str, month_to_date: Decimal, as_of: dt.datetime
    ) -> Projection | None: ...


def no_forecast(
    customer_id: str, month: str, month_to_date: Decimal, as_of: dt.datetime
) -> Projection | None:
    """No projections: invoices print them as null and commits fall back to the straight line."""
    return None


def elapsed_share(month: str, as_of: dt.datetime) -> Decimal:
    """How much of the month has passed at `as_of`, from 0 to 1, exactly."""
    start, end = periods.month_bounds(month)
    elapsed = min(max(as_of - start, dt.timedelta(0)), end - start)
    return Decimal(elapsed // dt.timedelta(microseconds=1)) / Decimal(
        (end - start) // dt.timedelta(microseconds=1)
    )


def straight_line(
    customer_id: str, month: str, month_to_date: Decimal, as_of: dt.datetime
) -> Projection:
    """The month-to-date pace held to the month's end: MTD / elapsed share of the month."""
    share = elapsed_share(month, as_of)
    return Projection(month_to_date if share == 0 else month_to_date / share)


# --- a customer's outlook: forecasts and pace from one as-of read --------------------------------


@dataclass(frozen=True)
class MetricPace:
    """Usage per day of the last week and what the customer's baseline expected of it."""

    recent: float
    usual: float
    usable: bool  # enough history before the week for a baseline


@dataclass(frozen=True)
class Outlook:
    """One customer's month: its forecasts by billable metric and its recent and usual pace."""

    forecasts: Mapping[str, MetricForecast]
    pace: Mapping[str, MetricPace]


def outlooks(
    histories: Mapping[str, usage_history.MetricHistory], month: str, as_of: dt.datetime
) -> dict[str, Outlook]:
    """Every customer's outlook from histories already read (`usage_history.read_month`)."""
    forecasts: dict[str, dict[str, MetricForecast]] = defaultdict(dict)
    for found in forecasting.forecast_histories(dict(histories), month, as_of):
        forecasts[found.customer_id][found.billable_metric] = found
    paces: dict[str, dict[str, MetricPace]] = defaultdict(dict)
    for metric, history in histories.items():
        if not history.customers:
            continue
        pace = spikes.recent_pace(history, as_of)
        for row, customer in enumerate(history.customers):
            if metric in forecasts.get(customer, {}):
                paces[customer][metric] = MetricPace(
                    float(pace.recent[row]), float(pace.usual[row]), bool(pace.usable[row])
                )
    return {c: Outlook(f, paces.get(c, {})) for c, f in forecasts.items()}


# --- pricing quantities -------------------------------------------------------------------------


def priced(card: RateCard, quantities: Mapping[str, Decimal]) -> Decimal:
    """The sum of the rounded line amounts of these quantities by billable metric."""
    total = Decimal(0)
    for metric, quantity in quantities.items():
        total = EXACT.add(total, card.line_amount(metric, quantity))
    return total


def float_amounts(model: PricingModel, quantities: np.ndarray) -> np.ndarray:
    """The unrounded price of each quantity in floats: for the shape of a path (when money
    accrues), never for an amount anyone reads."""
    amounts, lower = np.zeros_like(quantities), 0.0
    for tier in model.tiers:
        upper = np.inf if tier.up_to is None else float(tier.up_to)
        amounts += np.clip(quantities - lower, 0.0, upper - lower) * float(tier.unit_price)
        lower = upper
    return amounts


def _day_ends(days: Iterable[dt.date]) -> list[dt.datetime]:
    return [dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=1) for day in days]


def _path(ends: list[dt.datetime], money: np.ndarray, start: float, after: dt.datetime) -> Path:
    """(instant, share) points from running amounts `money` at `ends`, counted from `start`, for
    the instants after `after`; empty when nothing more accrues (then it accrues evenly)."""
    rest = float(money[-1]) - start
    if rest <= 0:
        return ()
    shares = np.clip((money - start) / rest, 0.0, 1.0)
    points = [(end, float(share)) for end, share in zip(ends, shares, strict=True) if end > after]
    return (*points[:-1], (ends[-1], 1.0))


def month_projection(
    card: RateCard, outlook: Outlook, month_to_date: Decimal, as_of: dt.datetime
) -> Projection:
    """The month the outlook forecasts (the one under way): the priced forecast, never below
    what is billed already, its path the forecast's daily running totals priced, and the
    customer's spending pace."""
    forecasts = outlook.forecasts
    total = max(priced(card, {m: f.projected for m, f in forecasts.items()}), month_to_date)
    low = max(priced(card, {m: f.low for m, f in forecasts.items()}), month_to_date)
    high = max(priced(card, {m: f.high for m, f in forecasts.items()}), total)
    days = next(iter(forecasts.values())).days
    money = sum(
        float_amounts(card.prices[m], np.array([float(d.cumulative) for d in f.days]))
        for m, f in forecasts.items()
    )
    known = sum(
        float(float_amounts(card.prices[m], np.array([float(f.month_to_date)]))[0])
        for m, f in forecasts.items()
    )
    path = _path(_day_ends(d.day for d in days), np.asarray(money), known, as_of)
    return Projection(total, low, high, path, _money_pace(card, outlook))


def later_month(card: RateCard, outlook: Outlook, month: str) -> Projection:
    """A month after the one under way: every day at the forecast's expected usage."""
    start, end = periods.month_bounds(month)
    days = [start.date() + dt.timedelta(days=n) for n in range((end - start).days)]
    total, money = Decimal(0), np.zeros(len(days))
    for metric, forecast in outlook.forecasts.items():
        expected = [forecast.expected_on(day) for day in days]
        total = EXACT.add(total, card.line_amount(metric, sum(expected, Decimal(0))))
        money += float_amounts(card.prices[metric], np.cumsum([float(e) for e in expected]))
    return Projection(total, path=_path(_day_ends(days), money, 0.0, start))


def _money_pace(card: RateCard, outlook: Outlook) -> MoneyPace:
    """Recent and usual usage per day priced at each metric's average price this month; a metric
    without a baseline counts the same on both sides."""
    recent = usual = 0.0
    for metric, pace in outlook.pace.items():
        projected = outlook.forecasts[metric].projected
        if projected <= 0:
            continue
        unit = float(card.line_amount(metric, projected)) / float(projected)
        recent += unit * pace.recent
        usual += unit * (pace.usual if pace.usable else pace.recent)
    return MoneyPace(Decimal(repr(recent)), Decimal(repr(usual)))


# --- the Forecast backed by the usage forecast ----------------------------------------------------


class UsageForecast:
    """The `Forecast` of the usage forecast: outlooks read once per (month, instant) for
    `customers` (every customer when None), or handed over with `add` when already computed. A
    customer it has nothing for (no usage in the weeks read) gets the straight line for the month
    under way, without an interval, and None for later months."""

    def __init__(
        self,
        card: RateCard,
        engine: sa.Engine | None = None,
        customers: Iterable[str] | None = None,
    ) -> None:
        self.card = card
        self._engine = engine
        self._customers = None if customers is None else sorted(set(customers))
        self._outlooks: dict[tuple[str, dt.datetime], dict[str, Outlook]] = {}

    def add(self, month: str, as_of: dt.datetime, found: dict[str, Outlook]) -> None:
        self._outlooks[(month, as_of)] = found

    def outlooks(self, month: str, as_of: dt.datetime) -> dict[str, Outlook]:
        """Every customer's outlook of `month` as of `as_of` (read now if not yet)."""
        key = (month, as_of)
        if key not in self._outlooks:
            found: dict[str, Outlook] = {}
            if self._engine is not None:
                histories, _ = usage_history.read_month(self._engine, month, as_of, self._customers)
                found = outlooks(histories, month, as_of)
            self._outlooks[key] = found
        return self._outlooks[key]

    def __call__(
        self, customer_id: str, month: str, month_to_date: Decimal, as_of: dt.datetime
    ) -> Projection | None:
        current = periods.month_of(as_of)
        if month < current:
            return None
        outlook = self.outlooks(current, as_of).get(customer_id)
        if outlook is None:  # nothing to forecast: the straight line, without an interval
            return (
                straight_line(customer_id, month, month_to_date, as_of)
                if month == current
                else None
            )
        if month == current:
            return month_projection(self.card, outlook, month_to_date, as_of)
        return later_month(self.card, outlook, month)


def month_forecast(
    engine: sa.Engine, card: RateCard, customers: Iterable[str] | None = None
) -> Forecast:
    """The forecast every projection uses (`invoice`, `commits`, the portal, the assets), for
    `customers` (every customer when None: one read of every collector as of the instant)."""
    return UsageForecast(card, engine, customers)
