"""Runs of one month at once (in-process runs bypass Dagster's run queue): all succeed, every
event is delivered once, totals exact."""

from __future__ import annotations

import threading

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.pipeline import Sandbox, fast_api, outbox_status, report_metadata, run_month, truth
from tests.reporting.test_exactly_once import load_month

pytestmark = pytest.mark.adversarial

MONTH = "2025-03"
CUSTOMERS, DAYS = 30, 19
TOTAL = CUSTOMERS * DAYS
RUNS = 3


def test_three_runs_of_one_month_at_once_all_succeed_and_end_exact(
    engine: sa.Engine, database_url: str, sandbox: Sandbox
) -> None:
    load_month(engine, MONTH, customers=CUSTOMERS, days=DAYS)
    sandbox.configure(latency_ms=5, lost_ack_rate=0.1)
    api = fast_api(sandbox.url)
    start = threading.Barrier(RUNS)
    results: list[dg.ExecuteInProcessResult] = []

    def run() -> None:
        start.wait()
        results.append(run_month(database_url, api, MONTH))

    threads = [threading.Thread(target=run) for _ in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [result.success for result in results] == [True] * RUNS
    assert sum(report_metadata(result)["acknowledged"] for result in results) == TOTAL
    assert outbox_status(engine) == {"acknowledged": TOTAL}
    ids = [event["transaction_id"] for event in sandbox.events()]
    assert len(ids) == len(set(ids)) == TOTAL
    assert sandbox.totals() == truth(engine)
