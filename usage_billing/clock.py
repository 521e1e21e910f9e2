"""The pipeline's clock; `USAGE_BILLING_NOW` (ISO 8601 with offset) pins it for tests."""

from __future__ import annotations

import datetime as dt
import os


def now() -> dt.datetime:
    """Current UTC time, or the pinned time in `USAGE_BILLING_NOW`."""
    pinned = os.environ.get("USAGE_BILLING_NOW")
    if pinned:
        value = dt.datetime.fromisoformat(pinned)
        if value.tzinfo is None:
            raise ValueError("USAGE_BILLING_NOW needs a UTC offset, e.g. 2025-02-01T00:00:00+00:00")
        return value.astimezone(dt.UTC)
    return dt.datetime.now(dt.UTC)
