"""Usage events: aggregated usage in the billing API's event shape, the truth reporting diffs
against the ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from usage_billing import db

_DELETE = sa.text(
    "DELETE FROM usage_events WHERE window_start >= :period_start AND window_start < :period_end"
)
# The quantity goes in properties[<billable metric>] as an exact decimal string, beside the groups.
_INSERT = sa.text("""
INSERT INTO usage_events (event_type, customer_id, window_start, groups, quantity, properties)
SELECT billable_metric, customer_id, window_start, groups, value,
       groups || jsonb_build_object(billable_metric, trim_scale(value)::text)
FROM aggregated_usage
WHERE window_start >= :period_start AND window_start < :period_end
ORDER BY billable_metric, window_start, customer_id, groups  -- key order: B-tree appends
""")
_SUMMARY = sa.text("""
SELECT event_type, count(*) AS events, sum(quantity) AS total
FROM usage_events
WHERE window_start >= :period_start AND window_start < :period_end
GROUP BY event_type
ORDER BY event_type
""")
_SAMPLE = sa.text("""
SELECT customer_id, event_type, window_start, properties
FROM usage_events
WHERE window_start >= :period_start AND window_start < :period_end
ORDER BY event_type, customer_id, window_start
LIMIT 1
""")


@dataclass(frozen=True)
class EventsSummary:
    """What a partition of usage events holds: per event type, events and total; one example."""

    per_type: dict[str, tuple[int, Decimal]]
    sample: dict[str, Any] | None

    @property
    def events(self) -> int:
        return sum(count for count, _ in self.per_type.values())


def replace_partition(conn: sa.Connection, start: dt.datetime, end: dt.datetime) -> EventsSummary:
    """Rebuild the usage events of windows in [start, end) from aggregated usage. Concurrent
    rebuilds of one period take turns (see `collectors.replace_partition`)."""
    params = {"period_start": start, "period_end": end}
    db.lock_for_transaction(conn, f"usage_events:{start:%Y-%m-%d}")
    conn.execute(_DELETE, params)
    conn.execute(_INSERT, params)
    per_type = {row.event_type: (row.events, row.total) for row in conn.execute(_SUMMARY, params)}
    sample = conn.execute(_SAMPLE, params).one_or_none()
    return EventsSummary(
        per_type,
        None
        if sample is None
        else {
            "customer_id": sample.customer_id,
            "event_type": sample.event_type,
            "timestamp": sample.window_start.isoformat(),
            "properties": sample.properties,
        },
    )
