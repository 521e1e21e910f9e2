"""Exactly-once reporting to a real sandbox: totals, deltas, corrections, faults, DLQ, locks."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from tests.helpers import sent, store_raw
from tests.pipeline import (
    NOW,
    Sandbox,
    aggregate,
    fast_api,
    outbox_status,
    report_metadata,
    run_month,
    truth,
)
from usage_billing import loader, periods, reporting
from usage_billing.resources import BillingApiResource

pytestmark = pytest.mark.integration


def load_month(engine: sa.Engine, month: str, customers: int, days: int, tag: str = "") -> None:
    lines = [
        sent(
            f"{tag}{month}-{c}-{d}-{n}",
            f"{month}-{d:02d}T{(3 * n + c) % 24:02d}:15:00+00:00",
            f"{c + 1}.{d:02d}",
            customer_id=f"cust_{c:03d}",
        )
        for c in range(customers)
        for d in range(1, days + 1)
        for n in range(2)
    ]
    assert loader.load_lines(engine, lines, source=f"test:{month}").quarantined == 0


def test_totals_are_exact_and_a_second_run_sends_nothing(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    load_month(engine, "2025-03", customers=7, days=19)
    first = run_month(database_url, api, "2025-03")
    assert first.success
    meta = report_metadata(first)
    assert meta["acknowledged"] == meta["sent"] == 7 * 19
    assert meta["dead_lettered"] == 0
    assert sandbox.totals() == truth(engine)

    second = run_month(database_url, api, "2025-03")
    assert report_metadata(second)["sent"] == 0
    assert report_metadata(second)["skipped_unchanged"] == 7 * 19
    assert len(sandbox.events()) == 7 * 19


def test_late_data_sends_only_the_delta_including_negative(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    load_month(engine, "2025-03", customers=2, days=3)
    assert run_month(database_url, api, "2025-03").success
    before = len(sandbox.events())
    late = [sent("late+", "2025-03-02T09:00:00+00:00", "0.5", customer_id="cust_000")]
    loader.load_lines(engine, late, source="late")
    store_raw(engine, "late-", "2025-03-03T09:00:00+00:00", "-1.03", customer_id="cust_001")
    result = run_month(database_url, api, "2025-03")
    assert report_metadata(result)["sent"] == 2
    new = sandbox.events()[before:]
    assert sorted(e["properties"]["events_sent"] for e in new) == ["-1.03", "0.5"]
    assert sandbox.totals() == truth(engine)


def test_windows_past_the_backdating_limit_are_sent_dated_now(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    load_month(engine, "2025-02", customers=2, days=28)
    result = run_month(database_url, api, "2025-02")
    assert result.success
    events = sandbox.events()
    corrections = [e for e in events if "corrects_window" in e["properties"]]
    on_time = [e for e in events if "corrects_window" not in e["properties"]]
    # NOW is 2025-03-20 12:00: windows up to 2025-02-14 are more than 34 days (less 1 h) old.
    assert len(corrections) == 2 * 14 and len(on_time) == 2 * 14
    assert {e["timestamp"] for e in corrections} == {"2025-03-20T12:00:00Z"}
    assert min(e["properties"]["corrects_window"] for e in corrections) == "2025-02-01T00:00:00Z"
    assert min(e["timestamp"] for e in on_time) == "2025-02-15T00:00:00Z"
    assert report_metadata(result)["dated_now_corrections"] == 28
    assert sandbox.totals() == truth(engine)


def test_faults_lost_acknowledgements_and_429s_still_give_exact_totals(
    engine: sa.Engine, database_url: str, sandbox: Sandbox
) -> None:
    load_month(engine, "2025-03", customers=25, days=19)
    sandbox.configure(fault_rate=0.3, lost_ack_rate=0.2, rate_limit=2000)
    api = fast_api(sandbox.url, max_concurrency=4, max_retries=40)
    result = run_month(database_url, api, "2025-03")
    assert result.success
    meta = report_metadata(result)
    assert meta["retried_requests"] > 0  # faults really happened
    assert sandbox.totals() == truth(engine)
    ids = [e["transaction_id"] for e in sandbox.events()]
    assert len(ids) == len(set(ids)) == 25 * 19  # a lost ack was resent and de-duplicated
    assert outbox_status(engine) == {"acknowledged": 25 * 19}


def test_bad_token_stops_with_a_clear_error_and_sends_nothing(
    engine: sa.Engine,
    database_url: str,
    sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    load_month(engine, "2025-03", customers=2, days=2)
    secret = "not-the-token-9f8e7d"
    result = run_month(database_url, fast_api(sandbox.url, token=secret), "2025-03")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "401" in message and "METRONOME_BEARER_TOKEN" in message
    assert secret not in message and secret not in caplog.text
    assert sandbox.events() == []
    assert outbox_status(engine) == {"pending": 4}  # kept for the next run, not dead-lettered


def test_rejected_event_goes_to_the_dlq_and_redrive_delivers_it(
    engine: sa.Engine, database_url: str, sandbox: Sandbox, api: BillingApiResource
) -> None:
    load_month(engine, "2025-03", customers=6, days=5)
    sandbox.configure(reject_customer_ids=["cust_004"])
    result = run_month(database_url, api, "2025-03")
    assert not result.success  # fails loudly...
    meta = report_metadata(result)
    assert (meta["acknowledged"], meta["dead_lettered"]) == (25, 5)  # ...after recording all
    letters = reporting.dead_letters(engine)
    assert {row.customer_id for row in letters} == {"cust_004"}
    assert {row.status_code for row in letters} == {400}
    assert all("cust_004" in row.message or "customer" in row.message for row in letters)
    rerun = run_month(database_url, api, "2025-03")
    assert not rerun.success  # a run is green only once its whole partition is delivered
    assert report_metadata(rerun)["sent"] == 0  # permanent dead letters wait for redrive
    assert len(sandbox.events()) == 25

    sandbox.configure(reject_customer_ids=[])  # the cause is fixed
    results = reporting.redrive(engine, api.get_client(), NOW, "2025-03")
    assert results["2025-03"].acknowledged == 5
    assert reporting.dead_letters(engine) == []
    assert sandbox.totals() == truth(engine)
    ids = [e["transaction_id"] for e in sandbox.events()]
    assert set(ids) >= {row.transaction_id for row in letters}  # the same transaction ids


def test_two_concurrent_runs_of_one_partition_send_once(
    engine: sa.Engine, database_url: str, sandbox: Sandbox
) -> None:
    load_month(engine, "2025-03", customers=10, days=19)
    aggregate(database_url, "2025-03")
    sandbox.configure(latency_ms=20)  # long enough for the runs to overlap
    api = fast_api(sandbox.url, max_concurrency=1)
    start, end = periods.month_bounds("2025-03")
    results: list[reporting.ReportStats] = []
    barrier = threading.Barrier(2)

    def report() -> None:
        barrier.wait()
        results.append(
            reporting.report_partition(engine, api.get_client(), "2025-03", start, end, NOW)
        )

    threads = [threading.Thread(target=report) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.sent for r in results) == [0, 10 * 19]
    assert sandbox.totals() == truth(engine)
