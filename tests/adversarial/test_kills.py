"""SIGKILL of `python -m usage_billing.cli materialize` at chosen points of a send, with injected
faults and lost acknowledgements; a normal run afterwards must end exact.

Each kill point is reached deterministically: the ingest gate in front of the sandbox withholds
the answers of chosen batches (they are stored, the sender hears nothing), so the sender stops at
a known place; the test waits for that observable state, in the gate or in PostgreSQL, then kills.
The outbox sends by window, then customer: with 100 customers a batch is exactly one day.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.pipeline import NOW, Sandbox, aggregate, fast_api, outbox_status, run_month, truth
from tests.reporting.gate import Batch, Gate, running_gate
from tests.reporting.test_exactly_once import load_month
from usage_billing import reporting

pytestmark = pytest.mark.adversarial

MONTH = "2025-03"
CUSTOMERS, DAYS = 100, 19
TOTAL = CUSTOMERS * DAYS  # 1,900 events, 19 batches, 1,000 acknowledgements per flush
POLL_SECONDS = 0.02
_FLUSH_WAITING = sa.text("""
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND query LIKE '%UPDATE usage_outbox%acknowledged%'
""")
_FIRST_OUTBOX_ROW = sa.text("""
SELECT transaction_id FROM usage_outbox
WHERE partition_key = :month ORDER BY window_start, event_type, customer_id, transaction_id
LIMIT 1 FOR UPDATE
""")


def day(batch: Batch) -> int:
    return int(batch[0]["timestamp"][8:10])


def acknowledged(engine: sa.Engine) -> int:
    return outbox_status(engine).get("acknowledged", 0)


@dataclass
class Scene:
    """What a kill point needs: the gate, the database, and the process to kill."""

    gate: Gate
    engine: sa.Engine
    child: subprocess.Popen[bytes]

    def until(self, condition: Callable[[], bool], what: str) -> None:
        """Poll an observable state; fail at once if the run ended before reaching it."""
        pause = threading.Event()
        for _ in range(int(90 / POLL_SECONDS)):
            if condition():
                return
            assert self.child.poll() is None, f"the run ended before {what}"
            pause.wait(POLL_SECONDS)
        raise AssertionError(f"gave up waiting for {what}")


@contextmanager
def before_the_first_ack(scene: Scene) -> Iterator[None]:
    """Batches are stored by the API, but no acknowledgement has reached the sender."""
    scene.gate.hold = lambda batch: True
    scene.gate.wait_for(lambda: scene.gate.held >= 1, "a stored, unacknowledged batch")
    assert acknowledged(scene.engine) == 0
    yield


@contextmanager
def mid_send(scene: Scene) -> Iterator[None]:
    """Days 1-10 acknowledged and recorded (one flush); day 11 on stored, unanswered."""
    scene.gate.hold = lambda batch: day(batch) >= 11
    scene.until(lambda: acknowledged(scene.engine) == 1000, "the first acknowledgement flush")
    scene.gate.wait_for(lambda: scene.gate.held >= 1, "a stored, unacknowledged batch")
    yield


@contextmanager
def during_the_ack_flush(scene: Scene) -> Iterator[None]:
    """The flush of the first 1,000 acknowledgements waits on a row lock the test holds. Day 10
    on is withheld until the lock is taken, so the flush (which needs day 10) cannot come first."""
    scene.gate.hold = lambda batch: day(batch) >= 10
    scene.gate.wait_for(lambda: scene.gate.held >= 1, "a withheld batch")
    with scene.engine.connect() as blocker, blocker.begin():
        blocker.execute(_FIRST_OUTBOX_ROW, {"month": MONTH})
        scene.gate.release()
        scene.until(lambda: flush_waiting(scene.engine), "the flush to wait on the row lock")
        yield  # killed while its transaction waits; the lock goes when this block ends
    assert acknowledged(scene.engine) == 0  # the flush never committed


def flush_waiting(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(_FLUSH_WAITING).scalar_one())


KILL_POINTS = [before_the_first_ack, mid_send, during_the_ack_flush]


def start_materialize(database_url: str, base_url: str, home: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "USAGE_DATABASE_URL": database_url,
        "METRONOME_BASE_URL": base_url,
        "USAGE_BILLING_NOW": NOW.isoformat(),
        "USAGE_BILLING_HOME": str(home),
    }
    command = [sys.executable, "-m", "usage_billing.cli", "materialize", "--month", MONTH]
    return subprocess.Popen(
        [*command, "--select", "key:reported_usage"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("kill_point", KILL_POINTS, ids=lambda point: point.__name__)
def test_sigkill_mid_send_then_a_normal_run_ends_exact(
    engine: sa.Engine,
    database_url: str,
    sandbox: Sandbox,
    tmp_path: Path,
    kill_point: Callable[[Scene], AbstractContextManager[None]],
) -> None:
    load_month(engine, MONTH, customers=CUSTOMERS, days=DAYS)
    aggregate(database_url, MONTH)
    sandbox.configure(fault_rate=0.1, lost_ack_rate=0.1)
    with running_gate(sandbox.url) as gate:
        child = start_materialize(database_url, gate.url, tmp_path / "home")
        try:
            with kill_point(Scene(gate, engine, child)):
                child.send_signal(signal.SIGKILL)
                child.wait()
        finally:
            child.kill()
            child.wait()
        assert child.returncode == -signal.SIGKILL, "the run must die at the kill point"
        stored_before = len(sandbox.events())
        assert stored_before > 0 and acknowledged(engine) < TOTAL

        gate.release()
        sandbox.configure(fault_rate=0.1, lost_ack_rate=0.2)
        assert run_month(database_url, fast_api(gate.url), MONTH).success
        resent = gate.resent()

    assert outbox_status(engine) == {"acknowledged": TOTAL}
    assert reporting.dead_letters(engine) == []
    ids = [event["transaction_id"] for event in sandbox.events()]
    assert len(ids) == len(set(ids)) == TOTAL  # every event once: resends were de-duplicated
    assert sandbox.totals() == truth(engine)
    assert resent > 0  # what the killed run had delivered unacknowledged was sent again
