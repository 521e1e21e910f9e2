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
    """What one send did: events handed to the client, and what became of them."""

    sent: int = 0
    retried_requests: int = 0
    acknowledged: int = 0
    dead_lettered: int = 0
    not_sent: int = 0  # left pending: the circuit breaker opened before their first request
    corrections: int = 0
    circuit_breaker: str = ""  # why the breaker opened, when it did
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Undelivered:
    """What of a partition the billing API has not acknowledged, after a run."""

    pending: int = 0
    dead_retryable: int = 0
    dead_permanent: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # dead letters by status and message

    @property
    def total(self) -> int:
        return self.pending + self.dead_retryable + self.dead_permanent


@dataclass
class ReportStats(DeliveryStats):
    """A reporting run of one partition: requeue, plan, send, then what is still undelivered."""

    compared: int = 0
    planned: int = 0
    requeued: int = 0
    undelivered: Undelivered = field(default_factory=Undelivered)

    @property
    def skipped_unchanged(self) -> int:
        return self.compared - self.planned

    def failure(self, partition_key: str) -> str | None:
        """Why the run must fail (the partition is not delivered), or None when it is."""
        left = self.undelivered
        if not left.total:
            return None
        lines = [
            f"partition {partition_key} is not delivered: {left.total} events unacknowledged "
            f"({left.pending} pending, {left.dead_retryable} dead letters that may succeed later, "
            f"{left.dead_permanent} permanent dead letters)"
        ]
        if self.circuit_breaker:
            lines.append(f"{self.not_sent} events not sent: {self.circuit_breaker}")
        lines += [f"{count} dead letters: {reason}" for reason, count in left.reasons.items()]
        lines.append(
            "The next run resends pending and retryable events with the same transaction ids; "
            "permanent dead letters need their cause fixed, then `usage-billing dlq redrive` "
            "(`usage-billing dlq list` shows them)."
        )
        return "\n".join(lines)


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
# Partitions with something to redrive (all, or one month): pending events, and dead letters
# (retryable ones only if asked).
_REDRIVABLE_PARTITIONS = sa.text("""
SELECT DISTINCT o.partition_key
FROM usage_outbox AS o LEFT JOIN dead_letters AS d USING (transaction_id)
WHERE o.status IN ('pending', 'dead')
  AND (CAST(:partition_key AS text) IS NULL OR o.partition_key = :partition_key)
  AND (o.status = 'pending' OR d.retryable OR NOT :retryable_only)
ORDER BY o.partition_key
""")
# Redrive and every run: dead events of a partition go back to pending, same transaction ids.
_REQUEUE = sa.text("""
UPDATE usage_outbox AS o SET status = 'pending'
FROM dead_letters AS d
WHERE d.transaction_id = o.transaction_id
  AND o.status = 'dead'
  AND o.partition_key = :partition_key
  AND (d.retryable OR NOT :retryable_only)
""")
# What of a partition is not acknowledged, and the dead letters' reasons (most frequent first).
_UNDELIVERED = sa.text("""
SELECT count(*) FILTER (WHERE o.status = 'pending') AS pending,
       count(*) FILTER (WHERE o.status = 'dead' AND d.retryable) AS dead_retryable,
       count(*) FILTER (WHERE o.status = 'dead' AND NOT coalesce(d.retryable, false))
         AS dead_permanent
FROM usage_outbox AS o LEFT JOIN dead_letters AS d USING (transaction_id)
WHERE o.partition_key = :partition_key AND o.status <> 'acknowledged'
""")
_DEAD_REASONS = sa.text("""
SELECT coalesce(d.status_code::text, 'no response') || ': ' || left(d.message, 200) AS reason,
       count(*) AS events
FROM usage_outbox AS o JOIN dead_letters AS d USING (transaction_id)
WHERE o.partition_key = :partition_key AND o.status = 'dead'
GROUP BY 1
ORDER BY 2 DESC, 1
LIMIT 5
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
        self.stats.retried_requests += max(outcome.attempts - 1, 0)
        if outcome.not_sent:  # never tried: it stays pending for the next run
            self.stats.not_sent += len(ids)
            return
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
        breaker = api.send(events, recorder)
    finally:
        recorder.flush()  # what was accepted before an auth error or a crash of the send loop
    stats.circuit_breaker = breaker.reason
    return stats


def requeue(engine: sa.Engine, partition_key: str, retryable_only: bool) -> int:
    """Put the partition's dead letters (retryable ones only, if asked) back in the outbox as
    pending, with their transaction ids; returns how many."""
    with engine.begin() as conn:
        params = {"partition_key": partition_key, "retryable_only": retryable_only}
        return conn.execute(_REQUEUE, params).rowcount


def undelivered(engine: sa.Engine, partition_key: str) -> Undelivered:
    """What of the partition the billing API has not acknowledged, and why."""
    params = {"partition_key": partition_key}
    with engine.connect() as conn:
        counts = conn.execute(_UNDELIVERED, params).one()
        dead = counts.dead_retryable + counts.dead_permanent
        reasons = dict(conn.execute(_DEAD_REASONS, params).tuples().all()) if dead else {}
    return Undelivered(counts.pending, counts.dead_retryable, counts.dead_permanent, reasons)


def report_partition(
    engine: sa.Engine,
    api: BillingApiClient,
    partition_key: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> ReportStats:
    """Under the partition lock: requeue the dead letters that died of unavailability, plan the
    partition's deltas, deliver everything pending, and say what is still undelivered (a run that
    leaves anything undelivered must fail: `ReportStats.failure`)."""
    with partition_lock(engine, partition_key):
        requeued = requeue(engine, partition_key, retryable_only=True)
        planned = plan(engine, partition_key, start, end)
        delivered = deliver_pending(engine, api, partition_key, now)
        left = undelivered(engine, partition_key)
    return ReportStats(
        **vars(delivered),
        compared=planned.compared,
        planned=planned.planned,
        requeued=requeued,
        undelivered=left,
    )


def redrive(
    engine: sa.Engine,
    api: BillingApiClient,
    now: dt.datetime,
    partition_key: str | None = None,
    retryable_only: bool = False,
) -> dict[str, DeliveryStats]:
    """Re-send dead letters (all, or one month's; with `retryable_only`, only those that died of
    unavailability) with their original transaction ids, and the events still pending in their
    partitions (left by a run whose circuit breaker opened, or that crashed)."""
    params = {"partition_key": partition_key, "retryable_only": retryable_only}
    with engine.connect() as conn:
        partitions = list(conn.execute(_REDRIVABLE_PARTITIONS, params).scalars())
    results = {}
    for key in partitions:
        with partition_lock(engine, key):
            requeue(engine, key, retryable_only)
            results[key] = deliver_pending(engine, api, key, now)
    return results


def dead_letters(engine: sa.Engine) -> list[sa.Row]:
    """Unresolved dead letters, oldest first."""
    with engine.connect() as conn:
        return conn.execute(_DEAD_LETTERS).all()
