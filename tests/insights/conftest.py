"""Usage histories for the insight tests: profiled customers rendered as raw metrics, and plain
steady customers; the alert webhook of the operations tests."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.helpers import sent
from tests.operations.conftest import Webhook, webhook  # noqa: F401 - the fixture, shared
from usage_billing import loader
from usage_billing.synthetic import profiles
from usage_billing.synthetic.plan import SeedPlan

HISTORY_START = dt.date(2025, 1, 1)
HISTORY_END = dt.date(2025, 4, 1)
CLOCK = dt.datetime(2025, 3, 20, 9, 30, tzinfo=dt.UTC)  # a Thursday morning
MONTH = "2025-03"

__all__ = ["CLOCK", "MONTH", "Webhook", "load_profiles", "steady_events"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """The pipeline clock pinned to CLOCK."""
    monkeypatch.setenv("USAGE_BILLING_NOW", CLOCK.isoformat())
    return CLOCK


def load_profiles(
    engine: sa.Engine,
    customers: int,
    until: dt.datetime,
    after: dt.datetime | None = None,
    seed: int = 5,
    scale: float = 0.05,
) -> list[profiles.UsageProfile]:
    """Load the raw metrics of `customers` profiled customers that occurred in [after, until)."""
    found = profiles.profiles(customers, HISTORY_START, HISTORY_END, seed, scale)
    start = dt.datetime.combine(HISTORY_START, dt.time(), dt.UTC)
    end = dt.datetime.combine(HISTORY_END, dt.time(), dt.UTC)
    plan = SeedPlan("profiles", (), start, end, until, seed)
    lines = (
        json.dumps(document)
        for profile in found
        for document in profiles.raw_documents(plan, profile)
        if after is None or dt.datetime.fromisoformat(document["occurred_at"]) >= after
    )
    result = loader.load_lines(engine, lines, source=f"profiles-{after}-{until}")
    assert result.quarantined == 0, result.reasons
    return found


def steady_events(
    customer: str, first: dt.date, last: dt.date, rows: int, value: int, hour: int | None = None
) -> Iterator[str]:
    """events_sent lines: every day from first to last, `rows` rows of `value` spread evenly over
    the day (or all at `hour` o'clock, a nightly upload)."""
    day = first
    while day <= last:
        for n in range(rows):
            seconds = hour * 3600 + n if hour is not None else n * 86_400 // rows
            at = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(seconds=seconds)
            yield sent(f"{customer}-{day}-{n}", at.isoformat(), value, customer_id=customer)
        day += dt.timedelta(days=1)
