"""The sandbox's PostgreSQL tables (prefix `sandbox_`), through SQLAlchemy Core.

Every statement lives in metronome_sandbox/sql/. Event properties travel as JSON text both ways
so numbers stay exact (jsonb keeps numeric digits; we parse them back into Decimal).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from metronome_sandbox import jsonutil
from metronome_sandbox.database import read_sql, with_psycopg
from metronome_sandbox.validation import Event, format_timestamp

SCHEMA_LOCK_ID = 7_400_787  # serializes concurrent sandbox start-ups creating the tables


@dataclass(frozen=True)
class StoredEvent:
    """An event as the sandbox stored it."""

    id: str
    transaction_id: str
    customer_id: str
    event_type: str
    timestamp: dt.datetime
    properties: dict[str, Any]
    processed_at: dt.datetime
    is_duplicate: bool

    def to_json(self) -> dict[str, Any]:
        """The event in Metronome's event shape plus `id`, `processed_at` and `is_duplicate`."""
        return {
            "id": self.id,
            "transaction_id": self.transaction_id,
            "customer_id": self.customer_id,
            "event_type": self.event_type,
            "timestamp": format_timestamp(self.timestamp),
            "properties": self.properties,
            "processed_at": format_timestamp(self.processed_at),
            "is_duplicate": self.is_duplicate,
        }


@dataclass(frozen=True)
class IngestOutcome:
    """How many events of a batch were new and how many were duplicates."""

    accepted: int
    duplicates: int


@dataclass(frozen=True)
class UsageAggregate:
    """One row of sql/usage.sql: a window's total, or one group's part of it."""

    customer_id: str
    metric_id: str
    window_start: dt.datetime
    group_value: str | None
    is_group: bool
    value: Decimal


class Store:
    """Accepted events in PostgreSQL; safe to share between threads."""

    def __init__(self, database_url: str) -> None:
        self.url = with_psycopg(database_url)
        # Every statement below is a single statement, atomic on its own: autocommit spares the
        # BEGIN and COMMIT round trips (a third of a small ingest's time). No pre-ping either,
        # for the same reason; a connection lost to a database restart fails one request (500),
        # which clients retry. A few connections: handlers hold one briefly, from a thread pool.
        self.engine = sa.create_engine(
            self.url, isolation_level="AUTOCOMMIT", pool_size=4, max_overflow=8
        )

    def init_schema(self) -> None:
        """Create the sandbox tables unless they exist."""
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK_ID})
                conn.exec_driver_sql(read_sql("schema.sql"))
        finally:
            engine.dispose()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def ingest(self, events: Sequence[Event], now: dt.datetime) -> IngestOutcome:
        """Store a validated batch atomically (one statement); repeats of a recent transaction
        id are stored as duplicates and never counted."""
        seen: set[str] = set()
        rows = []
        for ordinal, event in enumerate(events):
            rows.append(
                {
                    "ord": ordinal,
                    "transaction_id": event.transaction_id,
                    "customer_id": event.customer_id,
                    "event_type": event.event_type,
                    "event_time": event.timestamp.isoformat(),
                    "properties": event.properties,
                    "first_in_batch": event.transaction_id not in seen,
                }
            )
            seen.add(event.transaction_id)
        with self.engine.connect() as conn:
            flags = conn.execute(
                sa.text(read_sql("ingest.sql")),
                {"events": jsonutil.dumps(rows), "now": now},
            ).scalars()
            duplicates = sum(1 for flag in flags if flag)
        return IngestOutcome(accepted=len(rows) - duplicates, duplicates=duplicates)

    def events(
        self, customer_id: str | None = None, event_type: str | None = None
    ) -> list[StoredEvent]:
        """Accepted, de-duplicated events in acceptance order."""
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.text(read_sql("events_list.sql")),
                {"customer_id": customer_id, "event_type": event_type},
            )
            return [_stored_event(row, is_duplicate=False) for row in result]

    def search(self, transaction_ids: Sequence[str], now: dt.datetime) -> list[StoredEvent]:
        """Events (duplicates too) with these transaction ids, timestamped in the last 34 days."""
        if not transaction_ids:
            return []
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.text(read_sql("events_search.sql")),
                {"transaction_ids": list(transaction_ids), "now": now},
            )
            return [_stored_event(row, is_duplicate=row.is_duplicate) for row in result]

    def usage_customers(
        self,
        event_types: Sequence[str],
        starting_on: dt.datetime,
        ending_before: dt.datetime,
        from_customer: str,
        count: int,
    ) -> list[str]:
        """Up to `count` customers with usage of these event types in the range, in byte order,
        from `from_customer` on (sql/usage_customers.sql; '' from the first)."""
        parameters = {
            "event_types": list(event_types),
            "starting_on": starting_on,
            "ending_before": ending_before,
            "from_customer": from_customer,
            "count": count,
        }
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(read_sql("usage_customers.sql")), parameters)
            return list(result.scalars())

    def usage(
        self,
        metrics: Sequence[dict[str, str | None]],
        starting_on: dt.datetime,
        ending_before: dt.datetime,
        stride: dt.timedelta,
        customer_ids: Sequence[str],
    ) -> list[UsageAggregate]:
        """Sums per customer, metric and window (and group value) of sql/usage.sql, for these
        customers."""
        parameters = {
            "metrics": jsonutil.dumps(list(metrics)),
            "event_types": sorted({str(metric["event_type"]) for metric in metrics}),
            "starting_on": starting_on,
            "ending_before": ending_before,
            "stride": stride,
            "customer_ids": list(customer_ids),
        }
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(read_sql("usage.sql")), parameters)
            return [
                UsageAggregate(
                    customer_id=row.customer_id,
                    metric_id=row.metric_id,
                    window_start=row.window_start,
                    group_value=row.group_value,
                    is_group=row.group_value_present,
                    value=row.value,
                )
                for row in result
            ]


def _stored_event(row: sa.Row[Any], is_duplicate: bool) -> StoredEvent:
    return StoredEvent(
        id=str(row.id),
        transaction_id=row.transaction_id,
        customer_id=row.customer_id,
        event_type=row.event_type,
        timestamp=row.event_time,
        properties=jsonutil.loads(row.properties),
        processed_at=row.accepted_at,
        is_duplicate=is_duplicate,
    )
