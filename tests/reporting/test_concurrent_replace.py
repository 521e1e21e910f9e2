"""Two rebuilds of one month at once take turns: the second waits for the first to commit, then
replaces its rows. Without that, the second INSERT meets the first's rows: a unique violation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.pipeline import NOW
from tests.reporting.test_exactly_once import load_month
from usage_billing import collectors, periods, usage_events

pytestmark = pytest.mark.integration

START, END = periods.month_bounds("2025-03")
CUSTOMERS, DAYS = 4, 6
# Each customer-day of load_month carries two rows of `c + 1.dd`.
EXPECTED = sum(
    2 * Decimal(f"{c + 1}.{d:02d}") for c in range(CUSTOMERS) for d in range(1, DAYS + 1)
)
_WAITING_ON_A_LOCK = sa.text("""
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
""")
_TOTAL = {
    "aggregated_usage": sa.text("SELECT count(*), sum(value) FROM aggregated_usage"),
    "usage_events": sa.text("SELECT count(*), sum(quantity) FROM usage_events"),
}


def replace_aggregated_usage(conn: sa.Connection) -> None:
    collectors.replace_partition(conn, collectors.collectors()["events_sent"], START, END, NOW)


def replace_usage_events(conn: sa.Connection) -> None:
    usage_events.replace_partition(conn, START, END)


def wait_until_blocked(engine: sa.Engine) -> None:
    """Poll PostgreSQL until another session waits on a lock (the second rebuild)."""
    pause = threading.Event()
    with engine.connect() as conn:
        for _ in range(3000):
            if conn.execute(_WAITING_ON_A_LOCK).scalar_one():
                return
            conn.rollback()
            pause.wait(0.01)
    raise AssertionError("the second rebuild never waited for the first")


def race(engine: sa.Engine, replace: Callable[[sa.Connection], None]) -> list[BaseException]:
    """Rebuild once, uncommitted; start a second rebuild; commit the first once the second waits."""
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with engine.begin() as conn:
                replace(conn)
        except BaseException as error:  # reported to the test below
            errors.append(error)

    with engine.connect() as conn, conn.begin():
        replace(conn)
        thread = threading.Thread(target=second)
        thread.start()
        wait_until_blocked(engine)
    thread.join()
    return errors


@pytest.mark.parametrize("rebuilt_before", [False, True], ids=["first-build", "rebuild"])
def test_two_collector_rebuilds_of_one_month_take_turns(
    engine: sa.Engine, rebuilt_before: bool
) -> None:
    load_month(engine, "2025-03", customers=CUSTOMERS, days=DAYS)
    if rebuilt_before:
        with engine.begin() as conn:
            replace_aggregated_usage(conn)
    assert race(engine, replace_aggregated_usage) == []
    with engine.connect() as conn:
        assert conn.execute(_TOTAL["aggregated_usage"]).one() == (CUSTOMERS * DAYS, EXPECTED)


@pytest.mark.parametrize("rebuilt_before", [False, True], ids=["first-build", "rebuild"])
def test_two_usage_event_rebuilds_of_one_month_take_turns(
    engine: sa.Engine, rebuilt_before: bool
) -> None:
    load_month(engine, "2025-03", customers=CUSTOMERS, days=DAYS)
    with engine.begin() as conn:
        replace_aggregated_usage(conn)
        if rebuilt_before:
            replace_usage_events(conn)
    assert race(engine, replace_usage_events) == []
    with engine.connect() as conn:
        assert conn.execute(_TOTAL["usage_events"]).one() == (CUSTOMERS * DAYS, EXPECTED)
