"""Charts as plain SVG, drawn on the server: no script, no network, nothing to load.

Each chart is a `Chart`: a size and a list of marks (lines, paths, rectangles, dots, texts) whose
coordinates are numbers computed here and whose texts the template escapes. Styles are classes in
`static/portal.css`.

- `bill_chart`: the month's bill day by day — billed so far, then the forecast's expected running
  total with its 80 % band, up to the projected total at the month's end.
- `usage_chart`: one billable metric's daily usage, the days to come as expected, spikes marked.
- `commit_chart`: a commit's consumption from its start to its end against its amount.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from usage_billing.contracts import CommitStatus
from usage_billing.portal.figures import DayMoney
from usage_billing.pricing import money
from usage_billing.spikes import Spike

DAY = dt.timedelta(days=1)
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


@dataclass(frozen=True)
class Mark:
    """One SVG element: `kind` is line, path, rect, circle or text."""

    kind: str
    cls: str
    x: float = 0.0
    y: float = 0.0
    x2: float = 0.0
    y2: float = 0.0
    width: float = 0.0
    height: float = 0.0
    d: str = ""
    text: str = ""
    anchor: str = "start"
    title: str = ""  # a tooltip (SVG <title>)


@dataclass
class Chart:
    width: int
    height: int
    label: str  # what the chart shows, for screen readers
    marks: list[Mark] = field(default_factory=list)

    def line(self, cls: str, x: float, y: float, x2: float, y2: float) -> None:
        self.marks.append(Mark("line", cls, x=x, y=y, x2=x2, y2=y2))

    def path(self, cls: str, points: Sequence[tuple[float, float]], closed: bool = False) -> None:
        d = "M" + " L".join(f"{x},{y}" for x, y in points) + (" Z" if closed else "")
        self.marks.append(Mark("path", cls, d=d))

    def rect(self, cls: str, x: float, y: float, width: float, height: float, title: str) -> None:
        self.marks.append(Mark("rect", cls, x=x, y=y, width=width, height=height, title=title))

    def dot(self, cls: str, x: float, y: float, title: str) -> None:
        self.marks.append(Mark("circle", cls, x=x, y=y, title=title))

    def text(self, cls: str, x: float, y: float, text: str, anchor: str = "start") -> None:
        self.marks.append(Mark("text", cls, x=x, y=y, text=text, anchor=anchor))


@dataclass(frozen=True)
class Frame:
    """The plotting area inside a chart's margins, with linear scales onto it."""

    left: float
    top: float
    right: float
    bottom: float
    x_max: float
    y_max: float

    def x(self, value: float) -> float:
        return round(self.left + (self.right - self.left) * value / self.x_max, 2)

    def y(self, value: float) -> float:
        return round(self.bottom - (self.bottom - self.top) * value / self.y_max, 2)

    def at(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(self.x(x), self.y(y)) for x, y in points]


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round gridline values from 0 to at least `top`: steps of 1, 2, 2.5 or 5 x 10^k."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [step * n for n in range(math.ceil(top / step - 1e-9) + 1)]


def short_money(value: float, currency: str) -> str:
    """Money on an axis: $1.2k, $35, €3.4M."""
    return SYMBOLS.get(currency, f"{currency} ") + short_count(value)


def full_money(value: Decimal, currency: str) -> str:
    """$8,195.34"""
    return f"{SYMBOLS.get(currency, currency + ' ')}{Decimal(money(value)):,}"


def short_count(value: float) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.4g}"


def _grid(chart: Chart, frame: Frame, ticks: list[float], label: Callable[[float], str]) -> None:
    for tick in ticks:
        y = frame.y(tick)
        chart.line("grid", frame.left, y, frame.right, y)
        chart.text("axis", frame.left - 8, y + 4, label(tick), "end")


def _day_axis(chart: Chart, frame: Frame, days: Sequence[dt.date], at_end: bool) -> None:
    """Date labels every week: at a day's end (running totals) or its middle (bars)."""
    for n, day in enumerate(days):
        if n % 7 == 0:
            x = frame.x(n + (1 if at_end else 0.5))
            chart.text("axis", x, frame.bottom + 18, f"{day:%b} {day.day}", "middle")
    chart.line("baseline", frame.left, frame.bottom, frame.right, frame.bottom)


def _now(chart: Chart, frame: Frame, x: float) -> None:
    chart.line("now", x, frame.top - 6, x, frame.bottom)
    chart.text("now-label", x, frame.top - 10, "now", "middle")


def bill_chart(days: Sequence[DayMoney], as_of: dt.datetime, currency: str) -> Chart:
    """Billed so far (solid), the expected running total (dashed) and its 80 % band (shaded),
    with the projected total and its range at the month's end."""
    chart = Chart(760, 300, "The month's bill day by day: billed so far, forecast and 80 % range")
    if not days:
        return chart
    start = dt.datetime.combine(days[0].day, dt.time(), dt.UTC)
    elapsed = min(max((as_of - start) / DAY, 0.0), float(len(days)))
    top = max(float(max(d.high for d in days)), float(max(d.billed or 0 for d in days)), 1e-9)
    ticks = nice_ticks(top)
    frame = Frame(70, 28, chart.width - 120, chart.height - 34, len(days), ticks[-1])
    _grid(chart, frame, ticks, lambda v: short_money(v, currency))
    _day_axis(chart, frame, [d.day for d in days], at_end=True)

    # Running totals at each day's end; the day under way up to now.
    billed = [(0.0, 0.0)] + [(n + 1.0, float(d.billed)) for n, d in enumerate(days) if d.complete]
    under_way = [d.billed for d in days if not d.complete and d.billed is not None]
    now = (elapsed, float(under_way[0]) if under_way else billed[-1][1])
    if now[0] > billed[-1][0]:
        billed.append(now)
    ahead = [(n + 1.0, d) for n, d in enumerate(days) if n + 1.0 > now[0]]
    if ahead:
        upper = [now, *((x, float(d.high)) for x, d in ahead)]
        lower = [(x, float(d.low)) for x, d in reversed(ahead)]
        chart.path("band", frame.at([*upper, *lower]), closed=True)
        chart.path("forecast", frame.at([now, *((x, float(d.expected)) for x, d in ahead)]))
        _now(chart, frame, frame.x(now[0]))
    chart.path("billed", frame.at(billed))
    last = days[-1]
    end_x, end_y = frame.x(len(days)), frame.y(float(last.expected))
    chart.dot("forecast-end", end_x, end_y, f"projected {full_money(last.expected, currency)}")
    chart.text("end-label", end_x + 8, end_y + 4, full_money(last.expected, currency))
    for bound in (last.high, last.low):
        if abs(frame.y(float(bound)) - end_y) >= 14:  # room for a label of its own
            chart.text("range-label", end_x + 8, frame.y(float(bound)) + 4,
                       full_money(bound, currency))  # fmt: skip
    return chart


def usage_chart(
    metric: str,
    days: Sequence[dt.date],
    known: Sequence[Decimal],
    expected: Sequence[Decimal | None],
    spikes: Sequence[Spike],
    label: Callable[[Decimal], str],
) -> Chart:
    """Daily bars: usage known (the day under way so far), expected on the days to come (pale),
    spike days in the warning colour with a tick at what was expected of them."""
    chart = Chart(360, 150, f"Daily usage of {metric}, spikes marked")
    spike_days = {s.day: s for s in spikes}
    top = max([float(v) for v in known] + [float(v or 0) for v in expected] + [1e-9])
    ticks = nice_ticks(top, 3)
    frame = Frame(46, 14, chart.width - 8, chart.height - 26, len(days), ticks[-1])
    _grid(chart, frame, ticks, short_count)
    _day_axis(chart, frame, days, at_end=False)
    width = max(frame.x(1) - frame.x(0) - 2, 1.0)
    for n, day in enumerate(days):
        x, value, ahead = frame.x(n) + 1, known[n], expected[n]
        if ahead is not None and ahead > value:  # the rest of the day, or a day to come
            y = frame.y(float(ahead))
            title = f"{day}: {label(ahead)} expected"
            chart.rect("bar-expected", x, y, width, frame.bottom - y, title)
        if value > 0:
            spike = spike_days.get(day)
            y = frame.y(float(value))
            title = f"{day}: {label(value)}"
            if spike:
                title += f", {spike.ratio:.1f}x the {label(spike.expected)} expected"
            chart.rect("bar-spike" if spike else "bar", x, y, width, frame.bottom - y, title)
    for spike in spikes:
        n = (spike.day - days[0]).days
        if 0 <= n < len(days):
            y = frame.y(float(spike.expected))
            chart.line("spike-expected", frame.x(n) + 1, y, frame.x(n) + 1 + width, y)
    return chart


def commit_chart(status: CommitStatus, currency: str) -> Chart:
    """Consumption from the commit's start to its end: known (solid), projected (dashed), the
    commit's amount (a line) and the projected exhaustion (marked)."""
    chart = Chart(760, 260, f"Commit of {status.commit.amount} burned down")
    start = dt.datetime.combine(status.commit.starts_on, dt.time(), dt.UTC)
    end = dt.datetime.combine(status.commit.ends_before, dt.time(), dt.UTC)
    span = (end - start) / DAY

    def days_in(moment: dt.datetime) -> float:
        return min(max((moment - start) / DAY, 0.0), span)

    amount = float(status.commit.amount)
    path = [(days_in(t), float(v)) for t, v in status.path] or [(0.0, 0.0)]
    ticks = nice_ticks(max(amount, max(v for _, v in path)) * 1.05)
    frame = Frame(70, 28, chart.width - 120, chart.height - 34, span, ticks[-1])
    _grid(chart, frame, ticks, lambda v: short_money(v, currency))
    for month_start in _month_starts(start, end):
        x = frame.x(days_in(month_start))
        chart.text("axis", x, frame.bottom + 18, f"{month_start:%b %Y}", "middle")
    chart.line("baseline", frame.left, frame.bottom, frame.right, frame.bottom)
    y = frame.y(amount)
    chart.line("commit-amount", frame.left, y, frame.right, y)
    chart.text("end-label", frame.right + 8, y + 4, f"commit {short_money(amount, currency)}")
    now = days_in(status.as_of)
    known = [(x, v) for x, v in path if x <= now] or [(0.0, 0.0)]
    ahead = [(x, v) for x, v in path if x >= now]
    chart.path("billed", frame.at(known))
    if ahead:
        chart.path("forecast", frame.at([known[-1], *ahead]))
    if 0 < now < span:
        _now(chart, frame, frame.x(now))
    exhaustion = status.projected_exhaustion_date
    if exhaustion is not None:
        x = frame.x(days_in(dt.datetime.combine(exhaustion, dt.time(), dt.UTC)))
        chart.dot("exhaustion", x, y, f"runs out on {exhaustion}")
        chart.text("exhaustion-label", x, y - 10, f"runs out {exhaustion:%b} {exhaustion.day}",
                   "middle")  # fmt: skip
    at_end = float(status.projected_consumed_by_end)
    if abs(frame.y(at_end) - y) >= 14:
        chart.text("range-label", frame.right + 8, frame.y(at_end) + 4,
                   short_money(at_end, currency))  # fmt: skip
    return chart


def _month_starts(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    found, moment = [], start
    while moment < end:
        found.append(moment)
        moment = (moment + dt.timedelta(days=32)).replace(day=1)
    return found
