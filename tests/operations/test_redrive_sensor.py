"""The redrive sensor fires for what died of unavailability, once the API answers again."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.pipeline import Sandbox, fast_api
from usage_assets.sensors import redrive_when_healthy
from usage_billing.resources import BillingApiResource, WarehouseResource

pytestmark = pytest.mark.integration

UNREACHABLE = BillingApiResource(base_url="http://127.0.0.1:9", bearer_token="t", max_retries=0)
OUTBOX_ROW = sa.text("""
INSERT INTO usage_outbox (transaction_id, partition_key, event_type, customer_id, window_start,
                          revision, delta, created_at)
VALUES (:id, '2025-03', 'events_sent', 'cust_a', '2025-03-05T00:00:00Z', 1, 3, now() - :age)
""")


def _tick(database_url: str, api: BillingApiResource) -> dg.RunRequest | dg.SkipReason:
    resources = {"warehouse": WarehouseResource(database_url=database_url), "billing_api": api}
    context = dg.build_sensor_context(resources=resources)
    return redrive_when_healthy(context)


def test_events_a_broken_run_left_pending_are_redriven_once_the_api_answers(
    engine: sa.Engine, database_url: str, sandbox: Sandbox
) -> None:
    healthy = fast_api(sandbox.url)
    assert isinstance(_tick(database_url, healthy), dg.SkipReason)
    with engine.begin() as conn:  # a run still sending has just planned this one
        conn.execute(OUTBOX_ROW, {"id": "fresh", "age": dt.timedelta(minutes=1)})
    assert isinstance(_tick(database_url, healthy), dg.SkipReason)
    with engine.begin() as conn:  # its circuit breaker opened long ago: nobody sends it
        conn.execute(OUTBOX_ROW, {"id": "stale", "age": dt.timedelta(hours=1)})
    down = _tick(database_url, UNREACHABLE)
    assert isinstance(down, dg.SkipReason) and "still unhealthy" in str(down.skip_message)
    request = _tick(database_url, healthy)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key and request.run_key.endswith("-1")
