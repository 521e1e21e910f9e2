"""Run-time behaviour of a sandbox: fault injection, rate limit, latency, rejected customers, clock.

Tests change it through POST /sandbox/config and POST /sandbox/clock.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from decimal import Decimal
from typing import Any

from metronome_sandbox.ratelimit import TokenBucket
from metronome_sandbox.settings import SandboxSettings, check_rate
from metronome_sandbox.validation import ValidationError, format_timestamp, parse_rfc3339


def _number(body: dict[str, Any], name: str) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValidationError(f"{name} must be a number")
    return float(value)  # a probability or a rate, never money


class Controls:
    """Thread-safe, mutable copy of the behaviour settings of one running sandbox."""

    CONFIG_KEYS = frozenset(
        {
            "fault_rate",
            "lost_ack_rate",
            "rate_limit",
            "latency_ms",
            "reject_customer_ids",
            "fault_seed",
        }
    )

    def __init__(self, settings: SandboxSettings) -> None:
        self._lock = threading.Lock()
        self.fault_rate = settings.fault_rate
        self.lost_ack_rate = settings.lost_ack_rate
        self.latency_ms = settings.latency_ms
        self.reject_customer_ids = frozenset(settings.reject_customer_ids)
        self.fault_seed = settings.fault_seed
        self.frozen_now = settings.now.astimezone(dt.UTC) if settings.now else None
        self._random = random.Random(settings.fault_seed)
        self.bucket = TokenBucket(settings.rate_limit) if settings.rate_limit else None

    def now(self) -> dt.datetime:
        """The sandbox clock: the frozen time when set, else the real UTC time."""
        return self.frozen_now or dt.datetime.now(dt.UTC)

    def injected_fault(self) -> int | None:
        """500 or 503 with probability fault_rate, else None."""
        with self._lock:
            if self.fault_rate <= 0 or self._random.random() >= self.fault_rate:
                return None
            return self._random.choice((500, 503))

    def lose_ack(self) -> bool:
        """True with probability lost_ack_rate: store the batch, then answer 500."""
        with self._lock:
            return self.lost_ack_rate > 0 and self._random.random() < self.lost_ack_rate

    def config(self) -> dict[str, Any]:
        """The current behaviour, as GET/POST /sandbox/config show it."""
        return {
            "fault_rate": self.fault_rate,
            "lost_ack_rate": self.lost_ack_rate,
            "rate_limit": self.bucket.rate if self.bucket else None,
            "latency_ms": self.latency_ms,
            "reject_customer_ids": sorted(self.reject_customer_ids),
            "fault_seed": self.fault_seed,
        }

    def update(self, body: Any) -> None:
        """Apply the keys of a /sandbox/config body; on ValidationError nothing changes."""
        if not isinstance(body, dict) or not set(body) <= self.CONFIG_KEYS:
            raise ValidationError(
                f"body must be an object with keys among {sorted(self.CONFIG_KEYS)}"
            )
        changes = _config_changes(body)
        with self._lock:
            for name, value in changes.items():
                if name == "rate_limit":
                    self.bucket = TokenBucket(value) if value else None
                elif name == "fault_seed":
                    self.fault_seed = value
                    self._random = random.Random(value)
                else:
                    setattr(self, name, value)

    def set_clock(self, body: Any) -> None:
        """Freeze the clock at body["now"] (RFC 3339), or unfreeze it when that is null."""
        if not isinstance(body, dict) or "now" not in body:
            raise ValidationError('body must be {"now": "<RFC 3339>"} or {"now": null}')
        if body["now"] is None:
            self.frozen_now = None
            return
        if not isinstance(body["now"], str):
            raise ValidationError("now must be an RFC 3339 date-time or null")
        try:
            self.frozen_now = parse_rfc3339(body["now"])
        except ValueError as error:
            raise ValidationError(f"now: {error}") from None

    def clock(self) -> dict[str, Any]:
        """The clock as /sandbox/clock shows it."""
        return {"now": format_timestamp(self.now()), "frozen": self.frozen_now is not None}


def _config_changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    try:
        for name in ("fault_rate", "lost_ack_rate"):
            if name in body:
                changes[name] = _number(body, name)
                check_rate(name, changes[name])
    except ValueError as error:
        raise ValidationError(str(error)) from None
    if "rate_limit" in body:
        rate = None if body["rate_limit"] is None else _number(body, "rate_limit")
        if rate is not None and rate <= 0:
            raise ValidationError("rate_limit must be positive events/second, or null")
        changes["rate_limit"] = rate
    if "latency_ms" in body:
        latency = body["latency_ms"]
        if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
            raise ValidationError("latency_ms must be a non-negative integer")
        changes["latency_ms"] = latency
    if "reject_customer_ids" in body:
        ids = body["reject_customer_ids"]
        if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
            raise ValidationError("reject_customer_ids must be an array of strings")
        changes["reject_customer_ids"] = frozenset(ids)
    if "fault_seed" in body:
        seed = body["fault_seed"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValidationError("fault_seed must be an integer or null")
        changes["fault_seed"] = seed
    return changes
