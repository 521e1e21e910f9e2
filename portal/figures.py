"""A customer's month as the portal shows it: what is billed so far by line item, where the bill is
heading (the forecast, priced, day by day with its 80 % band), the unusual days, and the commits.

Everything comes from the same code as the command line, for one customer and from one as-of read
of its usage: `invoice` (line items, projected total and range), `forecast`, `spikes` and
`commits`. The page and the JSON endpoint render the same `CustomerMonth`, so they always agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from usage_billing import contracts, invoices, periods, projections, spikes, usage_history
from usage_billing.contracts import Commit, CommitStatus
from usage_billing.forecasting import MetricForecast
from usage_billing.invoices import Invoice
from usage_billing.pricing import RateCard, money
from usage_billing.projections import Projection
from usage_billing.reporting import decimal_text


@dataclass(frozen=True)
class DayMoney:
    """One day of the month in money: billed by the day's end (up to now for the day under way;
    None for days to come), and the forecast's running total with its 80 % band."""

    day: dt.date
    complete: bool
    billed: Decimal | None
    expected: Decimal
    low: Decimal
    high: Decimal


@dataclass(frozen=True)
class MetricLine:
    """A billable metric of the month: its forecast (quantities) and the price of each."""

    forecast: MetricForecast
    amount_to_date: Decimal
    projected_amount: Decimal
    low_amount: Decimal
    high_amount: Decimal


@dataclass(frozen=True)
class CustomerMonth:
    customer_id: str
    month: str
    as_of: dt.datetime
    currency: str
    invoice: Invoice
    invoice_json: dict[str, Any]  # exactly what `usage-billing invoice --json` prints
    projection: Projection | None
    metrics: list[MetricLine]
    days: list[DayMoney]
    spikes: list[spikes.Spike]
    commits: list[CommitStatus]

    def to_json(self) -> dict[str, Any]:
        """The JSON endpoint's document: decimal strings, ISO dates."""
        return {
            "customer_id": self.customer_id,
            "month": self.month,
            "as_of": self.as_of.isoformat(),
            "currency": self.currency,
            "invoice": self.invoice_json,
            "forecast": [
                {
                    **line.forecast.as_json(),
                    "amount_to_date": money(line.amount_to_date),
                    "projected_amount": money(line.projected_amount),
                    "low_amount": money(line.low_amount),
                    "high_amount": money(line.high_amount),
                }
                for line in self.metrics
            ],
            "daily": [
                {
                    "day": d.day.isoformat(),
                    "complete": d.complete,
                    "billed": None if d.billed is None else money(d.billed),
                    "expected": money(d.expected),
                    "low": money(d.low),
                    "high": money(d.high),
                }
                for d in self.days
            ],
            "spikes": [s.as_json() for s in self.spikes],
            "commits": [
                {
                    **status.to_json(),
                    "pace_ratio": None if status.pace is None else f"{status.pace.pace_ratio:.2f}",
                }
                for status in self.commits
            ],
        }


def customer_month(
    engine: sa.Engine,
    card: RateCard,
    commits: Iterable[Commit],
    customer_id: str,
    now: dt.datetime,
) -> CustomerMonth:
    """`customer_id`'s month under way at `now`; no other customer's rows are read."""
    month = periods.month_of(now)
    histories, as_of = usage_history.read_month(engine, month, now, [customer_id])
    outlook = projections.outlooks(histories, month, as_of).get(customer_id)
    forecast = projections.UsageForecast(card, engine, [customer_id])
    forecast.add(month, as_of, {customer_id: outlook} if outlook else {})
    mine = [c for c in commits if c.customer_id == customer_id and c.ends_before > now.date()]
    with engine.connect() as conn:
        found = invoices.priced_invoices(conn, card, month, [customer_id])
        invoice = found[0] if found else Invoice(customer_id, month, ())
        statuses = contracts.commit_statuses(conn, mine, now, forecast)
    projection = forecast(customer_id, month, invoice.total, as_of)
    forecasts = dict(outlook.forecasts) if outlook else {}
    return CustomerMonth(
        customer_id=customer_id,
        month=month,
        as_of=as_of,
        currency=card.currency,
        invoice=invoice,
        invoice_json=invoices.to_json(invoice, as_of, forecast),
        projection=projection,
        metrics=[_metric_line(card, f) for _, f in sorted(forecasts.items())],
        days=_days(card, forecasts, month, as_of),
        spikes=[
            s for s in spikes.find_spikes(histories, month, as_of) if s.customer_id == customer_id
        ],
        commits=statuses,
    )


def _metric_line(card: RateCard, forecast: MetricForecast) -> MetricLine:
    def price(quantity: Decimal) -> Decimal:
        return card.line_amount(forecast.billable_metric, quantity)

    return MetricLine(
        forecast,
        price(forecast.month_to_date),
        price(forecast.projected),
        price(forecast.low),
        price(forecast.high),
    )


def _days(
    card: RateCard, forecasts: dict[str, MetricForecast], month: str, as_of: dt.datetime
) -> list[DayMoney]:
    """The month day by day in money: each metric's running totals priced and summed, the way an
    invoice's total is the sum of its line items."""
    start, end = periods.month_bounds(month)
    days = [start.date() + dt.timedelta(days=n) for n in range((end - start).days)]
    known = dict.fromkeys(forecasts, Decimal(0))
    found = []
    for n, day in enumerate(days):
        for metric, forecast in forecasts.items():
            known[metric] += forecast.days[n].known
        started = dt.datetime.combine(day, dt.time(), dt.UTC) < as_of
        by_metric = [(m, f.days[n]) for m, f in forecasts.items()]
        found.append(
            DayMoney(
                day=day,
                complete=all(d.complete for _, d in by_metric) and started,
                billed=projections.priced(card, known) if started else None,
                expected=projections.priced(card, {m: d.cumulative for m, d in by_metric}),
                low=projections.priced(card, {m: d.cumulative_low for m, d in by_metric}),
                high=projections.priced(card, {m: d.cumulative_high for m, d in by_metric}),
            )
        )
    return found


def quantity(value: Decimal) -> str:
    """A quantity for people: thousands separated, exact."""
    text = decimal_text(value)
    whole, _, fraction = text.partition(".")
    return f"{int(whole):,}" + (f".{fraction}" if fraction else "")
