"""Exactly-once reporting: ledger -> outbox -> billing API -> acknowledged, or dead letters.

docs/architecture.md ("Reporting exactly once") tells the whole story.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from usage_billing import sql
from usage_billing.billing_api import BatchOutcome, BillingApiClient

BACKDATING_LIMIT = dt.timedelta(days=34)
# Sent events can wait in the outbox a little (retries, queues): keep clear of the API's limit.
BACKDATING_MARGIN = dt.timedelta(hours=1)
CORRECTION_REASON = "late data for a window older than the billing API's 34-day backdating limit"


@dataclass
class DeliveryStats:
    sent: int = 0
    retried_requests: int = 0
    acknowledged: int = 0
    dead_lettered: int = 0
    corrections: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class ReportStats(DeliveryStats):
    compared: int = 0
    planned: int = 0

    @property
    def skipped_unchanged(self) -> int:
        return self.compared - self.planned


def decimal_text(value: Decimal) -> str:
    """Exact decimal string without exponent or trailing zeros: 100, 0.3, -12.5."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def to_event(row: Any, now: dt.datetime) -> dict[str, Any]:
    """The billing API event for an outbox row; windows past the backdating limit go dated now."""
    properties = {**row.groups, row.event_type: decimal_text(row.delta)}
    timestamp = row.window_start
    if row.window_start < now - BACKDATING_LIMIT + BACKDATING_MARGIN:
        timestamp = now
        properties["corrects_window"] = rfc3339(row.window_start)
        properties["reason"] = CORRECTION_REASON
    return {
        "transaction_id": row.transaction_id,
        "customer_id": row.customer_id,
        "event_type": row.event_type,
        "timestamp": rfc3339(timestamp),
        "properties": properties,
    }


# One reporting run per partition at a time: a second run waits for the lock, then finds nothing
# left to send. Session-level, held on a connection of its own for the whole run.
_LOCK = sa.text("SELECT pg_advisory_lock(hashtextextended('reported_usage:' || :partition_key, 0))")
_UNLOCK = sa.text(
    "SELECT pg_advisory_unlock(hashtextextended('reported_usage:' || :partition_key, 0))"
)
# Events of a partition still to send (planned by this run or left by a crashed one).
_PENDING = sa.text("""
SELECT transaction_id, event_type, customer_id, window_start, groups, delta
FROM usage_outbox
WHERE partition_key = :partition_key AND status = 'pending'
ORDER BY window_start, event_type, customer_id, transaction_id
""")
# Partitions with unresolved dead letters (all, or one month), retryable ones only if asked.
_DEAD_PARTITIONS = sa.text("""
SELECT DISTINCT o.partition_key
FROM usage_outbox AS o JOIN dead_letters AS d USING (transaction_id)
WHERE o.status = 'dead'
  AND (CAST(:partition_key AS text) IS NULL OR o.partition_key = :partition_key)
  AND (d.retryable OR NOT :retryable_only)
ORDER BY o.partition_key
""")
# Redrive: dead events of a partition go back to pending, with the same transaction ids.
_REQUEUE = sa.text("""
UPDATE usage_outbox AS o SET status = 'pending'
FROM dead_letters AS d
WHERE d.transaction_id = o.transaction_id
  AND o.status = 'dead'
  AND o.partition_key = :partition_key
  AND (d.retryable OR NOT :retryable_only)
""")
# Unresolved dead letters with what they carry and why they failed.
_DEAD_LETTERS = sa.text("""
SELECT d.transaction_id, o.partition_key, o.event_type, o.customer_id, o.window_start, o.delta,
       d.status_code, d.message, d.retryable, d.failures, d.failed_at
FROM dead_letters AS d
JOIN usage_outbox AS o USING (transaction_id)
WHERE d.resolved_at IS NULL
ORDER BY d.failed_at, d.transaction_id
""")


@contextmanager
def partition_lock(engine: sa.Engine, partition_key: str) -> Iterator[None]:
    """Hold the partition's advisory lock on a connection of its own for the whole run."""
    with engine.connect() as conn:
        conn.execute(_LOCK, {"partition_key": partition_key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(_UNLOCK, {"partition_key": partition_key})
            conn.commit()


def plan(engine: sa.Engine, partition_key: str, start: dt.datetime, end: dt.datetime) -> sa.Row:
    """Write this partition's deltas to the outbox and the ledger in one transaction."""
    with engine.begin() as conn:
        return sql.execute(
            conn,
            "reporting_plan.sql",
            partition_key=partition_key,
            period_start=start,
            period_end=end,
        ).one()


ACK_FLUSH_EVENTS = 1000


class _Recorder:
    """Writes each batch's fate to the outbox and ledger. Acknowledgements are buffered and
    written per ~1,000 events: losing the buffer in a crash only means resending events that the
    API de-duplicates, while a transaction per batch would cap the send rate."""

    def __init__(self, engine: sa.Engine, stats: DeliveryStats) -> None:
        self.engine = engine
        self.stats = stats
        self.acknowledged: list[str] = []

    def __call__(self, outcome: BatchOutcome) -> None:
        ids = [event["transaction_id"] for event in outcome.events]
        self.stats.retried_requests += outcome.attempts - 1
        if outcome.accepted:
            self.acknowledged.extend(ids)
            if len(self.acknowledged) >= ACK_FLUSH_EVENTS:
                self.flush()
            return
        error = outcome.error
        with self.engine.begin() as conn:
            sql.execute(
                conn,
                "outbox_dead_letter.sql",
                transaction_ids=ids,
                status_code=error.status,
                message=error.message[:2000],
                retryable=error.retryable,
            )
        self.stats.dead_lettered += len(ids)
        key = f"{error.status or 'no response'}: {error.message[:200]}"
        self.stats.errors[key] = self.stats.errors.get(key, 0) + len(ids)

    def flush(self) -> None:
        if not self.acknowledged:
            return
        with self.engine.begin() as conn:
            sql.execute(conn, "outbox_acknowledge.sql", transaction_ids=self.acknowledged)
        self.stats.acknowledged += len(self.acknowledged)
        self.acknowledged = []


def deliver_pending(
    engine: sa.Engine, api: BillingApiClient, partition_key: str, now: dt.datetime
) -> DeliveryStats:
    """Send the partition's pending outbox events; record each batch's fate as it settles."""
    stats = DeliveryStats()
    with engine.connect() as conn:
        rows = conn.execute(_PENDING, {"partition_key": partition_key}).all()
    events = [to_event(row, now) for row in rows]
    stats.sent = len(events)
    stats.corrections = sum("corrects_window" in e["properties"] for e in events)
    recorder = _Recorder(engine, stats)
    try:
        api.send(events, recorder)
    finally:
        recorder.flush()  # what was accepted before an auth error or a crash of the send loop
    return stats


def report_partition(
    engine: sa.Engine,
    api: BillingApiClient,
    partition_key: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> ReportStats:
    """Plan the partition's deltas, then deliver everything pending, under the partition lock."""
    with partition_lock(engine, partition_key):
        planned = plan(engine, partition_key, start, end)
        delivered = deliver_pending(engine, api, partition_key, now)
    return ReportStats(**vars(delivered), compared=planned.compared, planned=planned.planned)


def redrive(
    engine: sa.Engine,
    api: BillingApiClient,
    now: dt.datetime,
    partition_key: str | None = None,
    retryable_only: bool = False,
) -> dict[str, DeliveryStats]:
    """Re-send dead letters (all, or one month's; with `retryable_only`, only those that died of
    unavailability) with their original transaction ids."""
    params = {"partition_key": partition_key, "retryable_only": retryable_only}
    with engine.connect() as conn:
        partitions = list(conn.execute(_DEAD_PARTITIONS, params).scalars())
    results = {}
    for key in partitions:
        with partition_lock(engine, key):
            with engine.begin() as conn:
                conn.execute(_REQUEUE, {"partition_key": key, "retryable_only": retryable_only})
            results[key] = deliver_pending(engine, api, key, now)
    return results


def dead_letters(engine: sa.Engine) -> list[sa.Row]:
    """Unresolved dead letters, oldest first."""
    with engine.connect() as conn:
        return conn.execute(_DEAD_LETTERS).all()
