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
from usage_billing.spikes import Spike


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


@dataclass(frozen=True)
class Frame:
    """The plotting area inside a chart's margins and the scales onto it."""

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


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round gridline values from 0 to at least `top`: steps of 1, 2, 2.5 or 5 x 10^k."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [step * n for n in range(math.ceil(top / step - 1e-9) + 1)]


def money_label(value: float, currency: str) -> str:
    """Short money for an axis: $1.2k, $35, €3.4M."""
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency, f"{currency} ")
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{symbol}{value / size:.3g}{suffix}"
    return f"{symbol}{value:.4g}"


def count_label(value: float) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.4g}"


def _points(points: Sequence[tuple[float, float]]) -> str:
    return "M" + " L".join(f"{x},{y}" for x, y in points)


def _grid(chart: Chart, frame: Frame, ticks: list[float], label: Callable[[float], str]) -> None:
    for tick in ticks:
        y = frame.y(tick)
        chart.marks.append(Mark("line", "grid", x=frame.left, y=y, x2=frame.right, y2=y))
        chart.marks.append(
            Mark("text", "axis", x=frame.left - 8, y=y + 4, text=label(tick), anchor="end")
        )


def _day_axis(chart: Chart, frame: Frame, days: Sequence[dt.date], at_end: bool) -> None:
    """Date labels every week; at a day's end (running totals) or its middle (bars)."""
    for n, day in enumerate(days):
        if n % 7 == 0:
            x = frame.x(n + (1 if at_end else 0.5))
            chart.marks.append(
                Mark(
                    "text",
                    "axis",
                    x=x,
                    y=frame.bottom + 18,
                    text=f"{day:%b} {day.day}",
                    anchor="middle",
                )
            )
    chart.marks.append(
        Mark("line", "baseline", x=frame.left, y=frame.bottom, x2=frame.right, y2=frame.bottom)
    )


def _now_marker(chart: Chart, frame: Frame, x: float) -> None:
    chart.marks.append(Mark("line", "now", x=x, y=frame.top - 6, x2=x, y2=frame.bottom))
    chart.marks.append(
        Mark("text", "now-label", x=x, y=frame.top - 10, text="now", anchor="middle")
    )


def bill_chart(days: Sequence[DayMoney], as_of: dt.datetime, currency: str) -> Chart:
    """Billed so far (solid), the expected running total (dashed) and its 80 % band (shaded)."""
    chart = Chart(760, 300, "The month's bill day by day: billed so far, forecast and 80 % range")
    if not days:
        return chart
    start = dt.datetime.combine(days[0].day, dt.time(), dt.UTC)
    elapsed = min(max((as_of - start) / dt.timedelta(days=1), 0.0), float(len(days)))
    top = max(float(max(d.high for d in days)), float(max(d.billed or 0 for d in days)), 1e-9)
    ticks = nice_ticks(top)
    frame = Frame(70, 28, chart.width - 110, chart.height - 34, len(days), ticks[-1])
    _grid(chart, frame, ticks, lambda v: money_label(v, currency))
    _day_axis(chart, frame, [d.day for d in days], at_end=True)

    billed = [(0.0, 0.0)] + [(n + 1.0, float(d.billed)) for n, d in enumerate(days) if d.complete]
    so_far = next((d for d in days if not d.complete and d.billed is not None), None)
    now = (elapsed, float(so_far.billed if so_far and so_far.billed is not None else billed[-1][1]))
    if now[0] > billed[-1][0]:
        billed.append(now)
    ahead = [(n + 1.0, d) for n, d in enumerate(days) if n + 1.0 > now[0]]
    if ahead:
        upper = [now] + [(x, float(d.high)) for x, d in ahead]
        lower = [(x, float(d.low)) for x, d in reversed(ahead)] + [now]
        band = _points([(frame.x(x), frame.y(y)) for x, y in upper + lower]) + " Z"
        chart.marks.append(Mark("path", "band", d=band, title="80 % range of the forecast"))
        expected = [now] + [(x, float(d.expected)) for x, d in ahead]
        chart.marks.append(
            Mark("path", "forecast", d=_points([(frame.x(x), frame.y(y)) for x, y in expected]))
        )
    chart.marks.append(
        Mark("path", "billed", d=_points([(frame.x(x), frame.y(y)) for x, y in billed]))
    )
    if elapsed < len(days):
        _now_marker(chart, frame, frame.x(now[0]))
    last = days[-1]
    end_x, end_y = frame.x(len(days)), frame.y(float(last.expected))
    chart.marks.append(
        Mark(
            "circle",
            "forecast-end",
            x=end_x,
            y=end_y,
            title=f"projected {money_label(float(last.expected), currency)}",
        )
    )
    chart.marks.append(
        Mark(
            "text",
            "end-label",
            x=end_x + 8,
            y=end_y + 4,
            text=money_label(float(last.expected), currency),
        )
    )
    for value, cls in ((last.high, "range-label"), (last.low, "range-label")):
        if value != last.expected:
            y = frame.y(float(value))
            chart.marks.append(
                Mark("text", cls, x=end_x + 8, y=y + 4, text=money_label(float(value), currency))
            )
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
    spike days in the warning colour with what was expected of them."""
    chart = Chart(360, 150, f"Daily usage of {metric}, spikes marked")
    spike_days = {s.day: s for s in spikes}
    top = max([float(v) for v in known] + [float(v or 0) for v in expected] + [1e-9])
    ticks = nice_ticks(top, 2)
    frame = Frame(46, 14, chart.width - 8, chart.height - 26, len(days), ticks[-1])
    _grid(chart, frame, ticks, count_label)
    _day_axis(chart, frame, days, at_end=False)
    width = max(frame.x(1) - frame.x(0) - 2, 1.0)
    for n, day in enumerate(days):
        x = frame.x(n) + 1
        value, ahead = known[n], expected[n]
        if ahead is not None and ahead > value:  # the rest of the day, or a day to come
            y = frame.y(float(ahead))
            chart.marks.append(
                Mark(
                    "rect",
                    "bar-expected",
                    x=x,
                    y=y,
                    width=width,
                    height=frame.bottom - y,
                    title=f"{day}: {label(ahead)} expected",
                )
            )
        if value > 0:
            spike = spike_days.get(day)
            y = frame.y(float(value))
            title = f"{day}: {label(value)}"
            if spike:
                title += f", {spike.ratio:.1f}x the {label(spike.expected)} expected"
            chart.marks.append(
                Mark(
                    "rect",
                    "bar-spike" if spike else "bar",
                    x=x,
                    y=y,
                    width=width,
                    height=frame.bottom - y,
                    title=title,
                )
            )
    for spike in spikes:
        n = (spike.day - days[0]).days
        if 0 <= n < len(days):
            y = frame.y(float(spike.expected))
            chart.marks.append(
                Mark(
                    "line", "spike-expected", x=frame.x(n) + 1, y=y, x2=frame.x(n) + 1 + width, y2=y
                )
            )
    return chart


def commit_chart(status: CommitStatus, currency: str) -> Chart:
    """Consumption from the commit's start to its end: known (solid), projected (dashed), the
    commit's amount (a line) and the projected exhaustion (marked)."""
    chart = Chart(760, 260, f"Commit of {status.commit.amount} burned down")
    start = dt.datetime.combine(status.commit.starts_on, dt.time(), dt.UTC)
    end = dt.datetime.combine(status.commit.ends_before, dt.time(), dt.UTC)
    span = (end - start) / dt.timedelta(days=1)

    def days_in(moment: dt.datetime) -> float:
        return min(max((moment - start) / dt.timedelta(days=1), 0.0), span)

    amount = float(status.commit.amount)
    path = [(days_in(t), float(v)) for t, v in status.path] or [(0.0, 0.0)]
    ticks = nice_ticks(max(amount, max(v for _, v in path)) * 1.05)
    frame = Frame(70, 28, chart.width - 110, chart.height - 34, span, ticks[-1])
    _grid(chart, frame, ticks, lambda v: money_label(v, currency))
    for month_start in _month_starts(start, end):
        x = frame.x(days_in(month_start))
        chart.marks.append(
            Mark(
                "text",
                "axis",
                x=x,
                y=frame.bottom + 18,
                text=f"{month_start:%b %Y}",
                anchor="middle",
            )
        )
    chart.marks.append(
        Mark("line", "baseline", x=frame.left, y=frame.bottom, x2=frame.right, y2=frame.bottom)
    )
    y = frame.y(amount)
    chart.marks.append(Mark("line", "commit-amount", x=frame.left, y=y, x2=frame.right, y2=y))
    chart.marks.append(
        Mark(
            "text",
            "end-label",
            x=frame.right + 8,
            y=y + 4,
            text=f"commit {money_label(amount, currency)}",
        )
    )
    now = days_in(status.as_of)
    known = [(x, v) for x, v in path if x <= now] or [(0.0, 0.0)]
    ahead = [(x, v) for x, v in path if x >= now]
    scaled = [(frame.x(x), frame.y(v)) for x, v in known]
    chart.marks.append(Mark("path", "billed", d=_points(scaled)))
    if ahead:
        scaled = [(frame.x(x), frame.y(v)) for x, v in [known[-1], *ahead]]
        chart.marks.append(Mark("path", "forecast", d=_points(scaled)))
    if 0 < now < span:
        _now_marker(chart, frame, frame.x(now))
    exhaustion = status.projected_exhaustion_date
    if exhaustion is not None:
        x = frame.x(days_in(dt.datetime.combine(exhaustion, dt.time(), dt.UTC)))
        chart.marks.append(
            Mark("circle", "exhaustion", x=x, y=frame.y(amount), title=f"runs out on {exhaustion}")
        )
        chart.marks.append(
            Mark(
                "text",
                "exhaustion-label",
                x=x,
                y=frame.y(amount) - 10,
                text=f"runs out {exhaustion:%b} {exhaustion.day}",
                anchor="middle",
            )
        )
    end_value = float(status.projected_consumed_by_end)
    chart.marks.append(
        Mark(
            "text",
            "range-label",
            x=frame.right + 8,
            y=frame.y(end_value) + 4,
            text=money_label(end_value, currency),
        )
    )
    return chart


def _month_starts(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    found, moment = [], start
    while moment < end:
        found.append(moment)
        moment = (moment + dt.timedelta(days=32)).replace(day=1)
    return found
