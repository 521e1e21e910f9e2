"""A long outage through Dagster: the host unreachable, then answering 503 to everything, then
back. Every run during the outage fails saying what is left and costs a bounded number of
requests; once the API is back, the redrive job delivers everything and a plain run is green."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from tests.pipeline import Sandbox, fast_api, outbox_status, report_metadata, run_month, truth
from tests.reporting.gate import running_gate
from tests.reporting.test_exactly_once import load_month
from tests.reporting.test_outage_recovery import failure_description
from usage_assets.jobs import dlq_redrive_job
from usage_billing import reporting
from usage_billing.resources import WarehouseResource

pytestmark = pytest.mark.adversarial

MONTH = "2025-03"
CUSTOMERS, DAYS = 100, 19
TOTAL = CUSTOMERS * DAYS  # 19 batches
THRESHOLD, CONCURRENCY = 5, 4
REQUESTS_PER_RUN = THRESHOLD + CONCURRENCY - 1  # the threshold, plus what was in flight


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_an_outage_then_recovery_through_dagster(
    engine: sa.Engine, database_url: str, sandbox: Sandbox
) -> None:
    load_month(engine, MONTH, customers=CUSTOMERS, days=DAYS)
    with running_gate(closed_port_url()) as gate:
        api = fast_api(gate.url, circuit_breaker_threshold=THRESHOLD, max_concurrency=CONCURRENCY)
        for outage in ("unreachable", "unreachable", "every request fails"):
            if outage == "every request fails":
                gate.redirect(sandbox.url)
                sandbox.configure(fault_rate=1)
            before = gate.requests
            down = run_month(database_url, api, MONTH)
            assert not down.success, outage
            assert gate.requests - before <= REQUESTS_PER_RUN, outage
            meta = report_metadata(down)
            assert (meta["acknowledged"], meta["undelivered"]) == (0, TOTAL), outage
            assert "circuit breaker open" in failure_description(down), outage
        outage_requests = gate.requests
        assert sandbox.events() == []

        sandbox.configure(fault_rate=0, lost_ack_rate=0.2)
        warehouse = WarehouseResource(database_url=database_url)
        redrive = dlq_redrive_job.execute_in_process(
            resources={"warehouse": warehouse, "billing_api": api}
        )
        assert redrive.success
        after = run_month(database_url, api, MONTH)
        assert after.success
        assert (report_metadata(after)["sent"], report_metadata(after)["undelivered"]) == (0, 0)

    assert outage_requests <= 3 * REQUESTS_PER_RUN  # not 19 batches x 13 attempts per run
    assert outbox_status(engine) == {"acknowledged": TOTAL}
    assert reporting.dead_letters(engine) == []
    ids = [event["transaction_id"] for event in sandbox.events()]
    assert len(ids) == len(set(ids)) == TOTAL
    assert sandbox.totals() == truth(engine)
