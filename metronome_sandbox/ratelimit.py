"""A token bucket over events per second, on the monotonic clock (not the sandbox clock)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Holds up to one second of events. A request larger than the bucket passes when the bucket
    is full and leaves it in debt, so big batches are never refused forever yet the average rate
    holds."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = rate
        self._clock = clock
        self._tokens = rate
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self, count: int) -> float | None:
        """Spend `count` tokens and return None, or return the seconds to wait before retrying."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= count or self._tokens >= self.capacity:
                self._tokens -= count
                return None
            return (min(count, self.capacity) - self._tokens) / self.rate


def retry_after_headers(wait_seconds: float) -> dict[str, str]:
    """Retry-After (whole seconds, at least 1) and the finer retry-after-ms the SDKs honour."""
    return {
        "Retry-After": str(max(1, math.ceil(wait_seconds))),
        "retry-after-ms": str(max(1, math.ceil(wait_seconds * 1000))),
    }
