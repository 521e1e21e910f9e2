"""After an outage the next run delivers everything or fails saying what is left; an outage costs
a bounded number of requests."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.pipeline import NOW, Sandbox, fast_api, outbox_status, report_metadata, run_month, truth
from tests.reporting.gate import running_gate
from tests.reporting.test_exactly_once import load_month
from usage_billing import reporting
from usage_billing.billing_api import BatchOutcome

pytestmark = pytest.mark.integration


def failure_description(result: dg.ExecuteInProcessResult) -> str:
    """The description reported_usage failed with."""
    failure = next(
        event
        for event in result.all_events
        if event.is_step_failure and event.step_key == "reported_usage"
    )
    return failure.step_failure_data.user_failure_data.description


def test_the_run_after_an_outage_delivers_what_died_of_unavailability(
    engine: sa.Engine, database_url: str, sandbox: Sandbox
) -> None:
    load_month(engine, "2025-03", customers=5, days=5)
    sandbox.configure(fault_rate=1)
    # A breaker that never opens: every batch spends its retries and dies, retryable.
    api = fast_api(sandbox.url, max_retries=2, circuit_breaker_threshold=1000)
    down = run_month(database_url, api, "2025-03")
    assert not down.success
    letters = reporting.dead_letters(engine)
    assert len(letters) == 25 and {row.retryable for row in letters} == {True}
    assert "25 dead letters that may succeed later" in failure_description(down)

    sandbox.configure(fault_rate=0)
    up = run_month(database_url, api, "2025-03")
    assert up.success
    meta = report_metadata(up)
    assert meta["requeued_dead_letters"] == meta["acknowledged"] == 25
    assert meta["undelivered"] == 0
    assert reporting.dead_letters(engine) == []
    assert outbox_status(engine) == {"acknowledged": 25}
    assert sandbox.totals() == truth(engine)


def test_a_run_fails_while_a_permanent_dead_letter_of_its_partition_remains(
    engine: sa.Engine, database_url: str, sandbox: Sandbox
) -> None:
    load_month(engine, "2025-03", customers=3, days=4)
    api = fast_api(sandbox.url)
    sandbox.configure(reject_customer_ids=["cust_001"])
    assert not run_month(database_url, api, "2025-03").success
    sandbox.configure(reject_customer_ids=[])

    rerun = run_month(database_url, api, "2025-03")  # nothing new to send, 4 events still dead
    assert not rerun.success
    meta = report_metadata(rerun)
    assert (meta["sent"], meta["undelivered_dead_permanent"], meta["undelivered"]) == (0, 4, 4)
    description = failure_description(rerun)
    assert "4 permanent dead letters" in description
    assert "4 dead letters: 400: events[0].customer_id: customer 'cust_001'" in description
    assert "usage-billing dlq redrive" in description

    reporting.redrive(engine, api.get_client(), NOW, "2025-03")
    assert run_month(database_url, api, "2025-03").success  # delivered now, so green
    assert sandbox.totals() == truth(engine)


def test_an_outage_opens_the_breaker_and_the_next_run_sends_the_rest(
    engine: sa.Engine, database_url: str, sandbox: Sandbox
) -> None:
    load_month(engine, "2025-03", customers=100, days=10)  # 1,000 events, 10 batches
    sandbox.configure(fault_rate=1)
    with running_gate(sandbox.url) as gate:
        api = fast_api(gate.url, max_concurrency=2, circuit_breaker_threshold=4)
        down = run_month(database_url, api, "2025-03")
        requests = gate.requests
    assert not down.success
    assert requests <= 4 + 2 - 1  # the threshold, plus what was in flight when it opened
    meta = report_metadata(down)
    dead, pending = meta["undelivered_dead_retryable"], meta["undelivered_pending"]
    assert dead + pending == 1000 and 100 <= dead <= 200  # the batches that had been tried
    assert meta["not_sent"] == pending
    description = failure_description(down)
    assert "1000 events unacknowledged" in description
    assert f"{pending} events not sent: circuit breaker open: 4 requests in a row" in description

    sandbox.configure(fault_rate=0)
    up = run_month(database_url, fast_api(sandbox.url), "2025-03")
    assert up.success
    assert report_metadata(up)["acknowledged"] == 1000
    assert outbox_status(engine) == {"acknowledged": 1000}
    assert sandbox.totals() == truth(engine)


def test_an_outage_of_a_thousand_batches_costs_a_bounded_number_of_requests(
    sandbox: Sandbox,
) -> None:
    sandbox.configure(fault_rate=1)
    events = [
        {
            "transaction_id": f"t{n}",
            "customer_id": "cust_a",
            "event_type": "events_sent",
            "timestamp": "2025-03-01T00:00:00Z",
            "properties": {"events_sent": "1"},
        }
        for n in range(100_000)
    ]
    outcomes: list[BatchOutcome] = []
    with running_gate(sandbox.url) as gate:
        client = fast_api(gate.url, max_concurrency=4, circuit_breaker_threshold=10).get_client()
        breaker = client.send(events, outcomes.append)
        requests = gate.requests
    assert breaker.is_open
    assert requests <= 10 + 4 - 1  # not 1,000 batches x 13 attempts
    assert sum(len(o.events) for o in outcomes) == 100_000  # every batch has a fate
    tried = [o for o in outcomes if not o.not_sent]
    assert len(tried) <= 4 and all(o.error and o.error.retryable for o in tried)
