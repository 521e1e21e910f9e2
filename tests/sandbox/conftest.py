"""A real sandbox on a loopback port, on the test's fresh PostgreSQL database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from metronome_sandbox import SandboxSettings, jsonutil, running_sandbox
from metronome_sandbox.metrics import load as load_metrics

TOKEN = "test-token-not-a-secret"
NOW = dt.datetime(2025, 3, 15, 12, 0, tzinfo=dt.UTC)
EVENTS_SENT_ID = next(m.id for m in load_metrics() if m.name == "events_sent")


def stamp(value: dt.datetime) -> str:
    """RFC 3339 UTC text of a datetime."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def event(
    transaction_id: str,
    value: Any = "1",
    customer_id: str = "cust_a",
    event_type: str = "events_sent",
    timestamp: dt.datetime | str = NOW - dt.timedelta(hours=1),
    **properties: Any,
) -> dict[str, Any]:
    """A usage event carrying `value` in properties[event_type], as the pipeline sends it."""
    return {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "event_type": event_type,
        "timestamp": timestamp if isinstance(timestamp, str) else stamp(timestamp),
        "properties": {event_type: value, **properties},
    }


def stored(client: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    """Every accepted, de-duplicated event the sandbox holds."""
    response = client.get("/sandbox/events", params=filters)
    assert response.status_code == 200
    return jsonutil.loads(response.content)


def usage_value(client: httpx.Client, customer_id: str = "cust_a", **body: Any) -> Decimal:
    """Total events_sent of a customer over the sandbox's day before NOW + 1 day, exact."""
    query = {
        "window_size": "none",
        "starting_on": "2025-03-14T00:00:00Z",
        "ending_before": "2025-03-16T00:00:00Z",
        "customer_ids": [customer_id],
        "billable_metrics": [{"id": EVENTS_SENT_ID}],
        **body,
    }
    response = client.post("/v1/usage", json=query)
    assert response.status_code == 200, response.text
    rows = jsonutil.loads(response.content)["data"]
    return sum((row["value"] for row in rows), Decimal(0))


@pytest.fixture
def settings(database_url: str) -> SandboxSettings:
    """Sandbox settings on the test's database, with the clock frozen at NOW."""
    return SandboxSettings(port=0, token=TOKEN, database_url=database_url, now=NOW)


@pytest.fixture
def sandbox(settings: SandboxSettings) -> Iterator[str]:
    """Base URL of a running sandbox."""
    with running_sandbox(settings) as base_url:
        yield base_url


@pytest.fixture
def client(sandbox: str) -> Iterator[httpx.Client]:
    """An authorized keep-alive HTTP client on the sandbox."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=sandbox, headers=headers, timeout=10) as http:
        yield http
