"""Exactly-once reporting: ledger -> outbox -> billing API -> acknowledged, or DLQ (DESIGN §6)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

import sql
from resources.billing_api import BatchOutcome, BillingApiResource

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


@contextmanager
def partition_lock(engine: sa.Engine, partition_key: str) -> Iterator[None]:
    """Hold the partition's advisory lock on a connection of its own for the whole run."""
    with engine.connect() as conn:
        conn.execute(sa.text(sql.read("reporting_lock.sql")), {"partition_key": partition_key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(
                sa.text(sql.read("reporting_unlock.sql")), {"partition_key": partition_key}
            )
            conn.commit()


def plan(engine: sa.Engine, partition_key: str, start: dt.datetime, end: dt.datetime) -> sa.Row:
    """Write this partition's deltas to the outbox and the ledger in one transaction."""
    params = {"partition_key": partition_key, "period_start": start, "period_end": end}
    with engine.begin() as conn:
        return conn.execute(sa.text(sql.read("reporting_plan.sql")), params).one()


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
            conn.execute(
                sa.text(sql.read("outbox_dead_letter.sql")),
                {
                    "transaction_ids": ids,
                    "status_code": error.status,
                    "message": error.message[:2000],
                },
            )
        self.stats.dead_lettered += len(ids)
        key = f"{error.status or 'no response'}: {error.message[:200]}"
        self.stats.errors[key] = self.stats.errors.get(key, 0) + len(ids)

    def flush(self) -> None:
        if not self.acknowledged:
            return
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(sql.read("outbox_acknowledge.sql")), {"transaction_ids": self.acknowledged}
            )
        self.stats.acknowledged += len(self.acknowledged)
        self.acknowledged = []


def deliver_pending(
    engine: sa.Engine, api: BillingApiResource, partition_key: str, now: dt.datetime
) -> DeliveryStats:
    """Send the partition's pending outbox events; record each batch's fate as it settles."""
    stats = DeliveryStats()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(sql.read("outbox_pending.sql")), {"partition_key": partition_key}
        ).all()
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
    api: BillingApiResource,
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
    api: BillingApiResource,
    now: dt.datetime,
    partition_key: str | None = None,
    retryable_only: bool = False,
) -> dict[str, DeliveryStats]:
    """Re-send dead letters (all, or one month's; with `retryable_only`, only those that died of
    unavailability) with their original transaction ids."""
    params = {"partition_key": partition_key, "retryable_only": retryable_only}
    with engine.connect() as conn:
        partitions = list(conn.execute(sa.text(sql.read("dlq_partitions.sql")), params).scalars())
    results = {}
    for key in partitions:
        with partition_lock(engine, key):
            with engine.begin() as conn:
                conn.execute(
                    sa.text(sql.read("dlq_requeue.sql")),
                    {"partition_key": key, "retryable_only": retryable_only},
                )
            results[key] = deliver_pending(engine, api, key, now)
    return results


def dead_letters(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql.read("dlq_list.sql"))).all()
