"""Configuration of the Metronome-compatible sandbox."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

DEV_TOKEN = "sandbox-dev-token"
"""The bearer token the sandbox accepts when neither `--token` nor METRONOME_BEARER_TOKEN is set."""

DEFAULT_PORT = 8787


def _token_from_environment() -> str:
    return os.environ.get("METRONOME_BEARER_TOKEN") or DEV_TOKEN


@dataclass
class SandboxSettings:
    """How one sandbox behaves; faults, rate and latency can change at run time (/sandbox/config).

    `fault_rate` and `lost_ack_rate` are probabilities per ingest request; `rate_limit` is in
    events per second (None: unlimited); `fault_seed` makes the injected faults reproducible;
    `database_url` None means `database.default_url()` (USAGE_DATABASE_URL or embedded); `now`
    freezes the sandbox clock (backdating and dedupe windows), None means the real UTC clock.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str = field(default_factory=_token_from_environment, repr=False)
    fault_rate: float = 0.0
    lost_ack_rate: float = 0.0
    rate_limit: float | None = None
    latency_ms: int = 0
    fault_seed: int | None = None
    database_url: str | None = field(default=None, repr=False)
    now: dt.datetime | None = None
    reject_customer_ids: frozenset[str] = frozenset()
    usage_page_size: int = 100

    def __post_init__(self) -> None:
        check_rate("fault_rate", self.fault_rate)
        check_rate("lost_ack_rate", self.lost_ack_rate)
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive events/second, or None for unlimited")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("now must carry a UTC offset")
        if not self.token:
            raise ValueError("token must not be empty")
        if self.usage_page_size < 1:
            raise ValueError("usage_page_size must be at least 1")


def check_rate(name: str, value: float) -> None:
    """Reject a probability outside [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
