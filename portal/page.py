"""What the month's page shows, formatted for people: a view of a `CustomerMonth`.

Amounts are the figures' own decimals (already in cents) with thousands separators; nothing is
recomputed here, so the page says what the JSON endpoint says.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from usage_billing import periods
from usage_billing.contracts import CommitStatus
from usage_billing.portal import charts
from usage_billing.portal.figures import CustomerMonth, quantity
from usage_billing.portal.links import Grant
from usage_billing.spikes import Spike

# Billable metrics whose quantity is an amount of money (priced as a share of it).
MONEY_METRICS = {"chargeflow_recovered_amount", "riskified_approved_value"}


amount = charts.full_money  # $1,209.00


def date(day: dt.date) -> str:
    """Mar 5, 2025"""
    return f"{day:%b} {day.day}, {day.year}"


def metric_name(metric: str) -> str:
    """agentforce_conversations -> Agentforce conversations"""
    words = metric.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


@dataclass(frozen=True)
class Row:
    """A line of the bill: so far, and projected with its range."""

    metric: str
    name: str
    quantity: str
    amount: str
    projected_quantity: str
    quantity_range: str
    projected_amount: str
    amount_range: str


@dataclass(frozen=True)
class UsagePanel:
    name: str
    chart: charts.Chart
    summary: str


@dataclass(frozen=True)
class SpikeRow:
    day: str
    name: str
    quantity: str
    expected: str
    ratio: str
    state: str


@dataclass(frozen=True)
class CommitPanel:
    term: str
    used: str
    amount: str
    outlook: str  # one line: where the commit is heading
    chart: charts.Chart
    facts: list[tuple[str, str]]
    warning: str


@dataclass(frozen=True)
class View:
    customer_id: str
    month_name: str
    as_of: str
    expires: str
    billed: str
    projected: str
    projected_range: str
    bill_chart: charts.Chart
    rows: list[Row]
    total: str
    usage: list[UsagePanel]
    spikes: list[SpikeRow]
    commits: list[CommitPanel]


def view(figures: CustomerMonth, grant: Grant) -> View:
    """The page of `figures`, reached through `grant`."""
    currency = figures.currency
    projection = figures.projection
    start = periods.month_bounds(figures.month)[0]
    return View(
        customer_id=figures.customer_id,
        month_name=f"{start:%B %Y}",
        as_of=f"{figures.as_of:%b} {figures.as_of.day}, {figures.as_of:%Y %H:%M} UTC",
        expires=date(grant.expires.date()),
        billed=amount(figures.invoice.total, currency),
        projected=amount(projection.total, currency) if projection else "-",
        projected_range=(
            f"80 % range {amount(projection.low, currency)} to {amount(projection.high, currency)}"
            if projection and projection.low is not None and projection.high is not None
            else "no range: too little usage to forecast"
        ),
        bill_chart=charts.bill_chart(figures.days, figures.as_of, currency),
        rows=_rows(figures),
        total=amount(figures.invoice.total, currency),
        usage=_usage(figures),
        spikes=[_spike_row(s) for s in sorted(figures.spikes, key=lambda s: s.day, reverse=True)],
        commits=[_commit(status, currency) for status in figures.commits],
    )


def _show(metric: str, value: Decimal, currency: str) -> str:
    return amount(value, currency) if metric in MONEY_METRICS else quantity(value)


def _rows(figures: CustomerMonth) -> list[Row]:
    currency = figures.currency
    billed = {item.billable_metric: item for item in figures.invoice.line_items}
    lines = {line.forecast.billable_metric: line for line in figures.metrics}
    rows = []
    for metric in sorted(billed.keys() | lines.keys()):
        item, line = billed.get(metric), lines.get(metric)
        so_far = item.quantity if item else Decimal(0)
        rows.append(
            Row(
                metric=metric,
                name=metric_name(metric),
                quantity=_show(metric, so_far, currency),
                amount=amount(item.amount if item else Decimal(0), currency),
                projected_quantity=_show(metric, line.forecast.projected, currency)
                if line
                else "-",
                quantity_range=(
                    f"{_show(metric, line.forecast.low, currency)} to "
                    f"{_show(metric, line.forecast.high, currency)}"
                    if line
                    else ""
                ),
                projected_amount=amount(line.projected_amount, currency) if line else "-",
                amount_range=(
                    f"{amount(line.low_amount, currency)} to {amount(line.high_amount, currency)}"
                    if line
                    else ""
                ),
            )
        )
    return rows


def _usage(figures: CustomerMonth) -> list[UsagePanel]:
    panels = []
    for line in figures.metrics:
        forecast, metric = line.forecast, line.forecast.billable_metric
        if not any(d.known or d.expected for d in forecast.days):
            continue
        spikes = [s for s in figures.spikes if s.billable_metric == metric]
        days = [d.day for d in forecast.days]
        known = [d.known for d in forecast.days]
        expected = [None if d.complete else d.expected for d in forecast.days]

        def label(value: Decimal, metric: str = metric) -> str:
            return _show(metric, value, figures.currency)

        chart = charts.usage_chart(metric, days, known, expected, spikes, label)
        summary = f"{label(forecast.month_to_date)} so far, {label(forecast.projected)} expected"
        if spikes:
            summary += f"; {len(spikes)} unusual day{'s' if len(spikes) > 1 else ''}"
        panels.append(UsagePanel(metric_name(metric), chart, summary))
    return panels


def _spike_row(spike: Spike) -> SpikeRow:
    return SpikeRow(
        day=f"{spike.day:%a %b} {spike.day.day}",
        name=metric_name(spike.billable_metric),
        quantity=quantity(spike.quantity),
        expected=quantity(spike.expected),
        ratio=f"{spike.ratio:.1f}x",
        state="complete" if spike.complete else f"under way ({spike.completion:.0%} of the day)",
    )


def _commit(status: CommitStatus, currency: str) -> CommitPanel:
    commit = status.commit
    last_day = commit.ends_before - dt.timedelta(days=1)
    exhaustion = status.projected_exhaustion_date
    facts = [
        ("Commit", amount(commit.amount, currency)),
        ("Used so far", amount(status.consumed, currency)),
        ("Remaining", amount(status.remaining, currency)),
        ("Projected by the end", amount(status.projected_consumed_by_end, currency)),
        ("Runs out", date(exhaustion) if exhaustion else "not before it ends"),
    ]
    if status.pace is not None:
        facts.append(("Pace", f"{status.pace.pace_ratio:.1f}x your usual"))
    warning = ""
    if status.exhausted:
        warning = "This commit has run out: further usage is billed as overage."
    elif status.will_exceed:
        warning = (
            f"At the forecast pace this commit runs out before it ends, on {date(exhaustion)}."
        )
    elif status.pace is not None and status.pace.burning:
        warning = f"Usage is running at {status.pace.pace_ratio:.1f}x your usual pace."
    if status.exhausted:
        outlook = "run out: usage beyond it is overage"
    elif exhaustion is not None:
        outlook = f"runs out on {date(exhaustion)} at the forecast pace"
    else:
        outlook = f"projected {amount(status.projected_consumed_by_end, currency)} by its end"
    return CommitPanel(
        term=f"{date(commit.starts_on)} to {date(last_day)}",
        used=amount(status.consumed, currency),
        amount=amount(commit.amount, currency),
        outlook=outlook,
        chart=charts.commit_chart(status, currency),
        facts=facts,
        warning=warning,
    )
