"""The official Metronome SDK (metronome-sdk) works against the sandbox, strict validation on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import metronome
import pytest

from metronome_sandbox import SandboxSettings
from tests.sandbox.conftest import EVENTS_SENT_ID, NOW, TOKEN, event, stored

pytestmark = pytest.mark.integration

START = dt.datetime(2025, 3, 14, tzinfo=dt.UTC)
END = dt.datetime(2025, 3, 16, tzinfo=dt.UTC)


@pytest.fixture
def settings(settings: SandboxSettings) -> SandboxSettings:
    """Small usage pages, so that a handful of rows already spans several pages."""
    settings.usage_page_size = 3
    return settings


@pytest.fixture
def sdk(sandbox: str) -> Iterator[metronome.Metronome]:
    """The official client on the sandbox; strict validation checks answers against its models."""
    with metronome.Metronome(
        base_url=sandbox, bearer_token=TOKEN, max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


def test_ingest_then_list_usage_across_pages(
    sdk: metronome.Metronome, client: httpx.Client
) -> None:
    sdk.v1.usage.ingest(
        usage=[
            event("a1", "2", timestamp="2025-03-14T10:00:00Z"),
            event("a2", "3", timestamp="2025-03-15T10:00:00Z"),
            event("b1", "5", customer_id="cust_b", timestamp="2025-03-15T11:00:00Z"),
            event("c1", "7", customer_id="cust_c", timestamp="2025-03-14T12:00:00Z"),
        ]
    )
    assert len(stored(client)) == 4
    page = sdk.v1.usage.list(
        starting_on=START,
        ending_before=END,
        window_size="DAY",
        billable_metrics=[{"id": EVENTS_SENT_ID}],
    )
    assert len(page.data) == 3
    assert page.has_next_page()
    rows = list(page)  # iterating a page walks every following page through next_page
    assert [(r.customer_id, r.start_timestamp.day, r.value) for r in rows] == [
        ("cust_a", 14, 2),
        ("cust_a", 15, 3),
        ("cust_b", 14, 0),
        ("cust_b", 15, 5),
        ("cust_c", 14, 7),
        ("cust_c", 15, 0),
    ]
    assert {r.billable_metric_name for r in rows} == {"events_sent"}


def test_list_usage_grouped_by_corrects_window(sdk: metronome.Metronome) -> None:
    sdk.v1.usage.ingest(
        usage=[
            event("now", "10"),
            event("fix", "-2.5", corrects_window="2025-01-10", reason="late data"),
        ]
    )
    rows = list(
        sdk.v1.usage.list(
            starting_on=START,
            ending_before=END,
            window_size="NONE",
            customer_ids=["cust_a"],
            billable_metrics=[{"id": EVENTS_SENT_ID, "group_by": {"key": "corrects_window"}}],
        )
    )
    assert [(r.value, r.groups) for r in rows] == [(7.5, {"2025-01-10": -2.5})]


def test_search_finds_events_and_duplicates(sdk: metronome.Metronome) -> None:
    sdk.v1.usage.ingest(usage=[event("s1", "1"), event("s2", "2")])
    sdk.v1.usage.ingest(usage=[event("s1", "1")])
    found = sdk.v1.usage.search(transaction_ids=["s1", "s2", "missing"])
    assert [(e.transaction_id, e.is_duplicate) for e in found] == [
        ("s1", False),
        ("s2", False),
        ("s1", True),
    ]
    assert found[0].timestamp == NOW - dt.timedelta(hours=1)
    assert found[0].matched_billable_metrics[0].id == EVENTS_SENT_ID


def test_errors_map_to_the_sdk_exceptions(
    sdk: metronome.Metronome, sandbox: str, client: httpx.Client
) -> None:
    with pytest.raises(metronome.BadRequestError, match=r"events\[0\]\.timestamp"):
        sdk.v1.usage.ingest(usage=[event("late", timestamp="2024-01-01T00:00:00Z")])
    with (
        metronome.Metronome(base_url=sandbox, bearer_token="wrong", max_retries=0) as stranger,
        pytest.raises(metronome.AuthenticationError),
    ):
        stranger.v1.usage.ingest(usage=[event("x")])
    client.post("/sandbox/config", json={"fault_rate": 1})
    with pytest.raises(metronome.InternalServerError):
        sdk.v1.usage.ingest(usage=[event("x")])
    client.post("/sandbox/config", json={"fault_rate": 0, "rate_limit": 1})
    sdk.v1.usage.ingest(usage=[event(f"burst-{i}") for i in range(100)])
    with pytest.raises(metronome.RateLimitError) as limited:
        sdk.v1.usage.ingest(usage=[event("x")])
    assert limited.value.response.headers["x-metronome-rate-limit-type"] == "client"
    assert [e["transaction_id"] for e in stored(client)] == [f"burst-{i}" for i in range(100)]
