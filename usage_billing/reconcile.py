"""Reconciliation with the billing API's own `/v1/usage`, per month, customer and billable metric;
and the per-month table of `usage-billing demo` (raw rows, aggregated, reported, accepted, DLQ).

What the API counts for a month's windows is usage dated in the month that corrects nothing, plus
the corrections of the month's windows: deltas for windows past the backdating limit are sent dated
when they are sent, with `corrects_window` (see reporting.to_event). One `/v1/usage` query per
month (every billable metric, grouped by `corrects_window`, paged) separates the two; corrections
dated after the months asked for come from one more query over the days no month query covers,
starting at the first day a correction of those months can carry. The cost follows the months
asked for and the customers, never the whole history.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from usage_billing import periods, reporting, sql
from usage_billing.billing_api import BillingApiClient
from usage_billing.collectors import collectors
from usage_billing.reporting import rfc3339

CORRECTS_WINDOW = "corrects_window"
# (month, customer_id, billable metric)
Key = tuple[str, str, str]

# Raw rows per raw metric that occurred in a month.
_RAW_ROWS = sa.text("""
SELECT metric, count(*) AS rows
FROM raw_metrics
WHERE occurred_at >= :period_start AND occurred_at < :period_end
GROUP BY metric
""")
# What the ledger says the billing API acknowledged, per month of the window, customer and metric.
# `event_type = ANY` lets the ledger's primary key (event_type, window_start, ...) serve the range.
_LEDGER_ACKNOWLEDGED = sa.text("""
SELECT to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM') AS month, customer_id,
       event_type AS metric, sum(acknowledged) AS acknowledged
FROM usage_ledger
WHERE event_type = ANY(:metrics) AND window_start >= :period_start AND window_start < :period_end
GROUP BY 1, 2, 3
HAVING sum(acknowledged) <> 0
""")


@dataclass(frozen=True)
class Span:
    """A range of days queried from the billing API. `month` is set when the span is that whole
    month (up to tomorrow): what it dates there and corrects nothing is the month's own usage."""

    start: dt.datetime
    end: dt.datetime
    month: str | None


@dataclass(frozen=True)
class Mismatch:
    """A month, customer and metric where the ledger and the billing API disagree."""

    month: str
    customer_id: str
    metric: str
    ledger: Decimal
    billing_api: Decimal

    def to_json(self) -> dict[str, str]:
        return {
            "month": self.month,
            "customer_id": self.customer_id,
            "metric": self.metric,
            "ledger": reporting.decimal_text(self.ledger),
            "billing_api": reporting.decimal_text(self.billing_api),
        }


def earliest_correction(window_start: dt.datetime) -> dt.datetime:
    """The first day a correction of this window can be dated: reporting sends a delta as a
    correction, dated when it is sent, once the window is older than the backdating limit minus
    its margin."""
    return periods.day_start(
        window_start + reporting.BACKDATING_LIMIT - reporting.BACKDATING_MARGIN
    )


def spans(months: Sequence[str], now: dt.datetime) -> list[Span]:
    """One span per month (up to tomorrow: the API answers whole days), then the days after them
    that no month covers but that may hold corrections of their windows."""
    tomorrow = periods.day_start(now) + dt.timedelta(days=1)
    result = []
    for month in sorted(set(months)):
        start, end = periods.month_bounds(month)
        if start < tomorrow:
            result.append(Span(start, min(end, tomorrow), month))
    if not result:
        return []
    covered_until = earliest_correction(result[0].start)
    gaps = []
    for span in result:
        if covered_until < span.start:
            gaps.append(Span(covered_until, span.start, None))
        covered_until = max(covered_until, span.end)
    if covered_until < tomorrow:
        gaps.append(Span(covered_until, tomorrow, None))
    return result + gaps


def metric_ids(
    api: BillingApiClient, start: dt.datetime, end: dt.datetime, names: Iterable[str]
) -> dict[str, str]:
    """The billing API's ids of these billable metrics, from the first rows of an ungrouped
    `/v1/usage` over [start, end) (one page unless a metric has no rows there: then it reads on,
    and a metric never seen has no usage in the range at all)."""
    wanted, found = set(names), {}
    with closing(api.usage(rfc3339(start), rfc3339(end))) as rows:  # stop paging at the break
        for row in rows:
            if row["billable_metric_name"] in wanted:
                found[row["billable_metric_name"]] = row["billable_metric_id"]
                if len(found) == len(wanted):
                    break
    return found


def _corrections(row: dict[str, Any]) -> Iterator[tuple[str, Decimal]]:
    """(month corrected, amount) of a row's corrects_window groups that had usage."""
    for window, value in (row.get("groups") or {}).items():
        if value is not None:
            yield window[:7], Decimal(value)


def accepted(api: BillingApiClient, months: Sequence[str], now: dt.datetime) -> dict[Key, Decimal]:
    """What the billing API counts per (month, customer, metric) for windows of `months`:
    usage dated in the month that corrects nothing, plus every correction of its windows."""
    queried = spans(months, now)
    if not queried:
        return {}
    ids = metric_ids(api, queried[0].start, max(s.end for s in queried), collectors())
    if not ids:  # no usage of any billable metric in the whole range
        return {}
    grouped = [{"id": i, "group_by": {"key": CORRECTS_WINDOW}} for i in ids.values()]
    wanted = set(months)
    totals: dict[Key, Decimal] = defaultdict(Decimal)
    for span in queried:
        for row in api.usage(rfc3339(span.start), rfc3339(span.end), grouped):
            customer, metric = row["customer_id"], row["billable_metric_name"]
            corrections = list(_corrections(row))
            if span.month is not None:
                own = Decimal(row["value"] or 0) - sum((v for _, v in corrections), Decimal(0))
                totals[(span.month, customer, metric)] += own
            for month, value in corrections:
                if month in wanted:
                    totals[(month, customer, metric)] += value
    return {key: value for key, value in totals.items() if value != 0}


def acknowledged(engine: sa.Engine, months: Sequence[str]) -> dict[Key, Decimal]:
    """What the ledger says the billing API acknowledged, per (month, customer, metric)."""
    bounds = [periods.month_bounds(month) for month in months]
    params = {
        "metrics": list(collectors()),
        "period_start": min(start for start, _ in bounds),
        "period_end": max(end for _, end in bounds),
    }
    with engine.connect() as conn:
        rows = conn.execute(_LEDGER_ACKNOWLEDGED, params)
        wanted = set(months)
        return {
            (r.month, r.customer_id, r.metric): r.acknowledged for r in rows if r.month in wanted
        }


def mismatches(
    engine: sa.Engine, api: BillingApiClient, months: Sequence[str], now: dt.datetime
) -> tuple[list[Mismatch], int]:
    """Every (month, customer, metric) of `months` where the ledger's acknowledged usage and the
    billing API's differ, and how many were compared."""
    api_totals = accepted(api, months, now)
    ledger = acknowledged(engine, months)
    keys = sorted(set(api_totals) | set(ledger))
    found = []
    for key in keys:
        ours, theirs = ledger.get(key, Decimal(0)), api_totals.get(key, Decimal(0))
        if ours != theirs:
            found.append(Mismatch(*key, ledger=ours, billing_api=theirs))
    return found, len(keys)


@dataclass(frozen=True)
class Line:
    month: str
    metric: str
    raw_rows: int
    aggregated: Decimal
    reported: Decimal
    accepted: Decimal
    dead_letters: int

    @property
    def agrees(self) -> bool:
        return self.aggregated == self.reported == self.accepted and self.dead_letters == 0


def reconcile(
    engine: sa.Engine, api: BillingApiClient, months: list[str], now: dt.datetime
) -> list[Line]:
    """The demo's table: per month and metric, raw rows, aggregated, reported, accepted, DLQ."""
    by_month_metric: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (month, _, metric), value in accepted(api, months, now).items():
        by_month_metric[(month, metric)] += value
    lines = []
    with engine.connect() as conn:
        for month in months:
            start, end = periods.month_bounds(month)
            params = {"period_start": start, "period_end": end}
            raw = dict(conn.execute(_RAW_ROWS, params).all())
            rows = sql.execute(conn, "reconciliation_month.sql", **params)
            by_metric = {row.metric: row for row in rows}
            for metric, collector in collectors().items():
                row = by_metric.get(metric)
                lines.append(
                    Line(
                        month=month,
                        metric=metric,
                        raw_rows=sum(raw.get(r.name, 0) for r in collector.raw_metrics),
                        aggregated=row.aggregated if row else Decimal(0),
                        reported=row.reported if row else Decimal(0),
                        accepted=by_month_metric.get((month, metric), Decimal(0)),
                        dead_letters=row.dead_letters if row else 0,
                    )
                )
    return lines


def render(lines: list[Line]) -> str:
    header = (
        f"{'month':<8} {'billable metric':<34} {'raw rows':>9} {'aggregated':>16} "
        f"{'reported':>16} {'billing API':>16} {'DLQ':>4}  ok"
    )
    out = [header, "-" * len(header)]
    for line in lines:
        out.append(
            f"{line.month:<8} {line.metric:<34} {line.raw_rows:>9} {line.aggregated:>16} "
            f"{line.reported:>16} {line.accepted:>16} {line.dead_letters:>4}  "
            f"{'yes' if line.agrees else 'NO'}"
        )
    return "\n".join(out)
