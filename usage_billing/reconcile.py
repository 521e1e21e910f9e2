"""Reconciliation per month and metric: raw rows, aggregated, reported, accepted by the API, DLQ."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from usage_billing import periods, sql
from usage_billing.billing_api import BillingApiClient
from usage_billing.collectors import collectors
from usage_billing.reporting import rfc3339

# Raw rows per raw metric that occurred in a month.
_RAW_ROWS = sa.text("""
SELECT metric, count(*) AS rows
FROM raw_metrics
WHERE occurred_at >= :period_start AND occurred_at < :period_end
GROUP BY metric
""")


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


def accepted_by_month(
    api: BillingApiClient, first: dt.datetime, until: dt.datetime
) -> dict[tuple[str, str], Decimal]:
    """What the billing API's own /v1/usage says per (month, metric). Corrections are dated when
    they were sent, so they count for the month in their `corrects_window` property."""
    metric_ids = {
        row["billable_metric_name"]: row["billable_metric_id"]
        for row in api.usage(rfc3339(first), rfc3339(until))
    }
    grouped = [{"id": i, "group_by": {"key": "corrects_window"}} for i in metric_ids.values()]
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    month = first
    while month < until:
        end = min(periods.month_bounds(month.strftime("%Y-%m"))[1], until)
        for row in api.usage(rfc3339(month), rfc3339(end), grouped):
            corrections = row.get("groups") or {}
            on_time = Decimal(row["value"] or 0) - sum(
                (Decimal(v or 0) for v in corrections.values()), Decimal(0)
            )
            totals[(month.strftime("%Y-%m"), row["billable_metric_name"])] += on_time
            for window, value in corrections.items():
                if window and window != "null":
                    totals[(window[:7], row["billable_metric_name"])] += Decimal(value or 0)
        month = end
    return totals


def reconcile(
    engine: sa.Engine, api: BillingApiClient, months: list[str], now: dt.datetime
) -> list[Line]:
    # The API answers whole UTC days; corrections are dated up to now, so end at the next midnight.
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    accepted = accepted_by_month(api, periods.month_bounds(months[0])[0], tomorrow)
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
                        accepted=accepted.get((month, metric), Decimal(0)),
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
