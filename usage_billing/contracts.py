"""Contracts: the commits customers bought, and how fast they burn down.

`USAGE_CONTRACTS` names the YAML file; unset, the one shipped beside this module
(`contracts.yaml`). A commit covers whole months, `[starts_on, ends_before)`; it is consumed by the
invoice totals of its months (the current month's so far) that the pricing run stored.

Projection (`projections.Forecast`): past months at their invoice totals, accruing evenly; the
current month its total to date, then the rest of its projected total along the forecast's daily
path; every later month at the forecast's expected usage of its days, priced. Where the forecast
has nothing, the straight line of the month-to-date pace (MTD / elapsed share of the month) for
the current month and every later one, evenly. Alerts are pace-aware (`spikes.commit_pace`) and
recorded as incidents for the `deliver_alerts` sensor to send.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import sqlalchemy as sa

from usage_billing import invoices, periods
from usage_billing.config import ConfigurationError
from usage_billing.incidents import open_incident, resolve_incident
from usage_billing.pricing import (
    EXACT,
    decimal_value,
    money,
    parse_yaml,
    read_text,
    round_to_cents,
)
from usage_billing.projections import Forecast, MoneyPace, Projection, no_forecast, straight_line
from usage_billing.spikes import CommitPace, commit_pace

SHIPPED_CONTRACTS = Path(__file__).with_name("contracts.yaml")
CENT_FRACTION = Decimal("0.000001")  # path amounts: finer than cents, so the sum stays exact
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Commit:
    """An amount a customer committed to spend over whole months [starts_on, ends_before)."""

    customer_id: str
    amount: Decimal
    starts_on: dt.date
    ends_before: dt.date

    @functools.cached_property
    def months(self) -> list[str]:
        last = periods.month_of(dt.datetime.combine(self.ends_before, dt.time(), dt.UTC))
        return periods.months_between(f"{self.starts_on:%Y-%m}", last)[:-1]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.starts_on}..{self.ends_before}"


# --- loading and validation -----------------------------------------------------------------


class _Entry:
    """Reads one contract; every problem names the file and the customer."""

    def __init__(self, path: Path, index: int, entry: Any) -> None:
        self.path, self.label = path, f"contract {index}"
        if not isinstance(entry, dict) or set(entry) != {"customer_id", "commit"}:
            self.fail("must be a mapping with exactly customer_id and commit")
        customer = entry["customer_id"]
        if not isinstance(customer, str) or not customer.strip():
            self.fail("customer_id must be a non-empty string")
        self.label = customer
        self.entry = entry

    def fail(self, problem: str) -> NoReturn:
        raise ConfigurationError(f"contracts {self.path}: {self.label}: {problem}")

    def date(self, commit: dict[str, Any], name: str) -> dt.date:
        value = commit[name]
        if isinstance(value, str) and _ISO_DATE.fullmatch(value):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                self.fail(f"commit {name} {value!r} is not a date")
        if type(value) is not dt.date:
            self.fail(f"commit {name} {value!r} is not a date written YYYY-MM-DD")
        if value.day != 1:
            self.fail(f"commit {name} {value} is not the first of a month (commits cover months)")
        return value

    def commit(self) -> Commit:
        commit = self.entry["commit"]
        if not isinstance(commit, dict) or set(commit) != {"amount", "starts_on", "ends_before"}:
            self.fail("commit must be a mapping with exactly amount, starts_on and ends_before")
        amount = decimal_value(commit["amount"])
        if amount is None or amount <= 0:
            self.fail(f'commit amount {commit["amount"]!r} is not a positive decimal ("5000.00")')
        starts_on, ends_before = self.date(commit, "starts_on"), self.date(commit, "ends_before")
        if ends_before <= starts_on:
            self.fail(f"commit ends_before {ends_before} is not after starts_on {starts_on}")
        if f"{starts_on:%Y-%m}" < periods.FIRST_MONTH:
            self.fail(f"commit starts_on {starts_on} is before the first partition")
        return Commit(self.label, amount, starts_on, ends_before)


def parse_contracts(path: Path, text: str) -> list[Commit]:
    """Validate the contracts `text` (read from `path`); a customer's commits must not overlap."""
    document = parse_yaml(path, text, "contracts")
    if not isinstance(document, dict) or set(document) != {"contracts"}:
        raise ConfigurationError(f"contracts {path}: must be a mapping with one key, contracts")
    entries = document["contracts"] or []
    if not isinstance(entries, list):
        raise ConfigurationError(f"contracts {path}: contracts must be a list")
    commits: list[Commit] = []
    for index, raw in enumerate(entries, start=1):
        entry = _Entry(path, index, raw)
        commit = entry.commit()
        for other in commits:
            overlap = other.starts_on < commit.ends_before and commit.starts_on < other.ends_before
            if other.customer_id == commit.customer_id and overlap:
                entry.fail(f"commit {commit.starts_on}..{commit.ends_before} overlaps {other}")
        commits.append(commit)
    return sorted(commits, key=lambda c: (c.customer_id, c.starts_on))


def contracts_path(environ: Mapping[str, str] | None = None) -> Path:
    """`USAGE_CONTRACTS`, else the shipped contracts."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("USAGE_CONTRACTS") or SHIPPED_CONTRACTS)


def load_contracts(path: Path | None = None) -> list[Commit]:
    """The commits in `path` (default: `USAGE_CONTRACTS` or the shipped file), validated;
    ConfigurationError with one line naming file, customer and problem."""
    path = path or contracts_path()
    return parse_contracts(path, read_text(path, "contracts"))


# --- burn-down --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitStatus:
    commit: Commit
    consumed: Decimal
    projected_consumed_by_end: Decimal
    projected_exhaustion_date: dt.date | None
    as_of: dt.datetime
    # (instant, consumed by then) from the commit's start to its end: known, then projected
    path: tuple[tuple[dt.datetime, Decimal], ...] = ()
    # the spending pace against the commit; None without a forecast or outside the period
    pace: CommitPace | None = None

    @property
    def remaining(self) -> Decimal:
        """What is left of the commit; never below zero (usage past it is overage)."""
        return max(EXACT.subtract(self.commit.amount, self.consumed), Decimal(0))

    @property
    def will_exceed(self) -> bool:
        return self.projected_consumed_by_end > self.commit.amount

    @property
    def exhausted(self) -> bool:
        return self.consumed >= self.commit.amount

    @property
    def active(self) -> bool:
        return self.as_of.date() < self.commit.ends_before

    def to_json(self) -> dict[str, Any]:
        """The `commits --json` shape."""
        exhaustion = self.projected_exhaustion_date
        return {
            "customer_id": self.commit.customer_id,
            "commit_amount": money(self.commit.amount),
            "starts_on": self.commit.starts_on.isoformat(),
            "ends_before": self.commit.ends_before.isoformat(),
            "consumed": money(self.consumed),
            "remaining": money(self.remaining),
            "projected_consumed_by_end": money(self.projected_consumed_by_end),
            "projected_exhaustion_date": exhaustion.isoformat() if exhaustion else None,
            "will_exceed": self.will_exceed,
        }


# Bounds of the same few months, asked for by every commit.
_month_bounds = functools.lru_cache(maxsize=1024)(periods.month_bounds)


@dataclass(frozen=True)
class _Segment:
    """An amount accruing evenly over [start, end)."""

    start: dt.datetime
    end: dt.datetime
    amount: Decimal

    def reaches(self, before: Decimal, target: Decimal) -> dt.date:
        """The day this segment brings `before` up to `target`."""
        share = float((target - before) / self.amount)  # a date, not money: a float is fine
        return (self.start + (self.end - self.start) * share).date()


def _accrual(
    start: dt.datetime, end: dt.datetime, accrued: Decimal, projection: Projection
) -> list[_Segment]:
    """From `accrued` at `start` up to the projection's total at `end`, along its path (evenly
    without one). The segments add up to the rest exactly."""
    rest = max(EXACT.subtract(projection.total, accrued), Decimal(0))
    points = [(instant, share) for instant, share in projection.path if start < instant < end]
    segments, before, so_far = [], start, Decimal(0)
    for instant, share in [*points, (end, 1.0)]:
        share_of_rest = (rest * Decimal(repr(share))).quantize(CENT_FRACTION)
        target = min(share_of_rest, rest) if instant < end else rest
        amount = max(target - so_far, Decimal(0))
        segments.append(_Segment(before, instant, amount))
        so_far += amount
        before = instant
    return segments


def _timeline(
    commit: Commit, totals: Mapping[str, Decimal], now: dt.datetime, forecast: Forecast
) -> tuple[list[_Segment], MoneyPace | None]:
    """The commit's months as accruing amounts, and the spending pace: months over at their
    invoice totals; the current month its total to date until now, then the rest of its
    projected total along the forecast's path; every later month at the forecast's expected
    usage. Without a forecast, the straight line: the current month's pace, evenly."""
    current = periods.month_of(now)
    to_date = totals.get(current, Decimal(0))
    if all(month < current for month in commit.months):
        forecasted = None  # the commit is over: nothing to project
    else:
        forecasted = forecast(commit.customer_id, current, to_date, now)
    pace = forecasted or straight_line(commit.customer_id, current, to_date, now)
    segments = []
    for month in commit.months:
        start, end = _month_bounds(month)
        if month < current:
            segments.append(_Segment(start, end, totals.get(month, Decimal(0))))
        elif month == current:
            segments.append(_Segment(start, now, to_date))
            segments.extend(_accrual(now, end, to_date, pace))
        else:
            later = forecast(commit.customer_id, month, Decimal(0), now) if forecasted else None
            segments.extend(_accrual(start, end, Decimal(0), later or Projection(pace.total)))
    return segments, forecasted.pace if forecasted else None


def burndown(
    commit: Commit,
    totals: Mapping[str, Decimal],
    now: dt.datetime,
    forecast: Forecast = no_forecast,
) -> CommitStatus:
    """A commit's consumption so far and projected to its end, from the customer's invoice
    totals by month (`totals`; the current month's to date)."""
    consumed, cumulative, exhaustion = Decimal(0), Decimal(0), None
    segments, spending = _timeline(commit, totals, now, forecast)
    path = []
    for segment in segments:
        if not path:
            path.append((segment.start, Decimal(0)))
        after = EXACT.add(cumulative, segment.amount)
        if exhaustion is None and segment.amount > 0 and after >= commit.amount:
            exhaustion = segment.reaches(cumulative, commit.amount)
        if segment.start < now:
            consumed = EXACT.add(consumed, segment.amount)
        cumulative = after
        path.append((segment.end, cumulative))
    projected = round_to_cents(cumulative)
    return CommitStatus(
        commit,
        consumed,
        projected,
        exhaustion,
        now,
        tuple(path),
        _pace(commit, consumed, projected, now, spending),
    )


def _pace(
    commit: Commit,
    consumed: Decimal,
    projected: Decimal,
    now: dt.datetime,
    spending: MoneyPace | None,
) -> CommitPace | None:
    """The commit's pace (spikes.commit_pace) inside its period, when a forecast gives one."""
    start = dt.datetime.combine(commit.starts_on, dt.time(), dt.UTC)
    end = dt.datetime.combine(commit.ends_before, dt.time(), dt.UTC)
    if spending is None or not start <= now < end:
        return None
    return commit_pace(
        commit.amount,
        consumed,
        (now - start) / (end - start),
        spending.recent_daily,
        spending.usual_daily,
        (end - now) / dt.timedelta(days=1),
        projected,
    )


def commit_statuses(
    conn: sa.Connection,
    commits: Iterable[Commit],
    now: dt.datetime,
    forecast: Forecast = no_forecast,
) -> list[CommitStatus]:
    """Every commit's burn-down from the invoice totals the pipeline stored (`invoice_totals`).
    The current month's total is as of the run that priced it, so that is the instant its pace
    is measured at (now, if it has not been priced yet)."""
    commits = list(commits)
    if not commits:
        return []
    current = periods.month_of(now)
    as_of = min(invoices.priced_at(conn, current) or now, now)
    # From the first commit month, or the current month when every commit starts later: its
    # pace projects the commits not started yet.
    first = min(current, *(f"{c.starts_on:%Y-%m}" for c in commits))
    totals = invoices.stored_totals(conn, (c.customer_id for c in commits), first, current)
    return [burndown(c, totals.get(c.customer_id, {}), as_of, forecast) for c in commits]


INCIDENT_PREFIX = "commit-"
# Commit incidents not resolved yet, and whether their alert went out.
_OPEN_COMMIT_INCIDENTS = sa.text("""
SELECT incident_key, notified_at IS NOT NULL AS notified
FROM alert_incidents
WHERE starts_with(incident_key, :prefix) AND resolved_at IS NULL
""")
_DELETE_BURNDOWN = sa.text("DELETE FROM commit_burndown")
_INSERT_BURNDOWN = sa.text("""
INSERT INTO commit_burndown
  (customer_id, starts_on, ends_before, commit_amount, consumed, remaining,
   projected_consumed_by_end, projected_exhaustion_date, will_exceed, as_of)
VALUES
  (:customer_id, :starts_on, :ends_before, :commit_amount, :consumed, :remaining,
   :projected_consumed_by_end, :projected_exhaustion_date, :will_exceed, :as_of)
""")


def replace_burndown(conn: sa.Connection, statuses: Iterable[CommitStatus]) -> None:
    """Replace the stored burn-down with `statuses` (the commits file is the whole truth)."""
    rows = [
        {
            "customer_id": s.commit.customer_id,
            "starts_on": s.commit.starts_on,
            "ends_before": s.commit.ends_before,
            "commit_amount": s.commit.amount,
            "consumed": s.consumed,
            "remaining": s.remaining,
            "projected_consumed_by_end": s.projected_consumed_by_end,
            "projected_exhaustion_date": s.projected_exhaustion_date,
            "will_exceed": s.will_exceed,
            "as_of": s.as_of,
        }
        for s in statuses
    ]
    conn.execute(_DELETE_BURNDOWN)
    if rows:
        conn.execute(_INSERT_BURNDOWN, rows)


# --- alerts -----------------------------------------------------------------------------------

# An open burning incident holds until the pace falls below this, so a pace hovering around
# PACE_ALERT_RATIO does not open, close and reopen (and alert) day after day.
PACE_SETTLED_RATIO = 1.5


def commit_incidents(status: CommitStatus, open_keys: set[str]) -> list[tuple[str, bool, str]]:
    """(incident key, whether it holds, alert title) for the three incidents of a commit."""
    commit = status.commit
    key = f"{commit.customer_id}:{commit.starts_on}"
    burning_key = f"{INCIDENT_PREFIX}burning:{key}"
    pace = status.pace
    burning = pace is not None and (
        pace.burning or (burning_key in open_keys and pace.pace_ratio >= PACE_SETTLED_RATIO)
    )
    live = status.active and not status.exhausted
    return [
        (
            f"{INCIDENT_PREFIX}will-exceed:{key}",
            live and status.will_exceed,
            f"Commit of {commit.customer_id} projected to run out on "
            f"{status.projected_exhaustion_date}, before it ends on {commit.ends_before}",
        ),
        (
            burning_key,
            live and burning,
            f"Commit of {commit.customer_id} burning at "
            f"{pace.pace_ratio if pace else 0:.1f}x its usual pace",
        ),
        (
            f"{INCIDENT_PREFIX}exhausted:{key}",
            status.active and status.exhausted,
            f"Commit of {commit.customer_id} has run out: consumed {money(status.consumed)} "
            f"of {money(commit.amount)}",
        ),
    ]


def record_alerts(engine: sa.Engine, statuses: Iterable[CommitStatus]) -> list[str]:
    """Open an incident (alerted once, by `incidents.deliver_due`) per active commit projected to
    run out before its end, per commit burning at twice its usual pace (spikes.commit_pace) and
    per commit that has run out; resolve those whose condition cleared or whose commit left the
    contracts file. An alert not delivered yet is brought up to date. Returns the keys of the
    incidents whose alert is due."""
    with engine.connect() as conn:
        rows = conn.execute(_OPEN_COMMIT_INCIDENTS, {"prefix": INCIDENT_PREFIX})
        notified = dict(rows.tuples().all())
    due, holding = [], set()
    for status in statuses:
        for incident, holds, title in commit_incidents(status, set(notified)):
            if not holds:
                continue
            holding.add(incident)
            if notified.get(incident):
                continue  # alerted already: once per incident
            if open_incident(engine, incident, title, describe(status)):
                due.append(incident)
    for incident in sorted(set(notified) - holding):
        resolve_incident(engine, incident)
    return due


def describe(status: CommitStatus) -> list[str]:
    """The alert's lines: the `commits --json` figures and the pace."""
    lines = [f"{name}: {value}" for name, value in status.to_json().items()]
    if status.pace is not None:
        lines.append(
            f"pace: {status.pace.pace_ratio:.1f}x usual, {status.pace.consumed_share:.0%} used "
            f"at {status.pace.elapsed_share:.0%} of the period ({status.pace.reason})"
        )
    return lines
