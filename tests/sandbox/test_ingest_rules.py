"""POST /v1/ingest rules of the sandbox: validation, auth, limits, dedupe, faults, persistence."""

from __future__ import annotations

import datetime as dt
import gzip
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from metronome_sandbox import SandboxSettings, jsonutil, running_sandbox
from tests.sandbox.conftest import NOW, TOKEN, event, stamp, stored, usage_value

pytestmark = pytest.mark.integration

GOOD = event("good-0")


def _post(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/v1/ingest", json=body)


def _message(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"message"}
    return body["message"]


def _without(name: str) -> dict[str, Any]:
    bad = event("bad-1")
    del bad[name]
    return bad


# (case, bad event, field the 400 must name)
BAD_EVENTS = [
    pytest.param(_without("transaction_id"), "transaction_id", id="transaction_id missing"),
    pytest.param({**event("x"), "transaction_id": ""}, "transaction_id", id="transaction_id empty"),
    pytest.param({**event("x"), "transaction_id": "t" * 129}, "transaction_id", id="tx 129 chars"),
    pytest.param({**event("x"), "transaction_id": 7}, "transaction_id", id="transaction_id number"),
    pytest.param(_without("customer_id"), "customer_id", id="customer_id missing"),
    pytest.param({**event("x"), "customer_id": ""}, "customer_id", id="customer_id empty"),
    pytest.param({**event("x"), "customer_id": ["a"]}, "customer_id", id="customer_id array"),
    pytest.param(_without("event_type"), "event_type", id="event_type missing"),
    pytest.param({**event("x"), "event_type": ""}, "event_type", id="event_type empty"),
    pytest.param({**event("x"), "event_type": None}, "event_type", id="event_type null"),
    pytest.param(_without("timestamp"), "timestamp", id="timestamp missing"),
    pytest.param({**event("x"), "timestamp": "2025-03-15"}, "timestamp", id="date only"),
    pytest.param({**event("x"), "timestamp": "2025-03-15T11:00:00"}, "timestamp", id="no offset"),
    pytest.param({**event("x"), "timestamp": "25-03-15T11:00:00Z"}, "timestamp", id="2-digit year"),
    pytest.param({**event("x"), "timestamp": "2025-13-15T11:00:00Z"}, "timestamp", id="month 13"),
    pytest.param({**event("x"), "timestamp": "yesterday"}, "timestamp", id="not a date"),
    pytest.param({**event("x"), "timestamp": 1742036400}, "timestamp", id="epoch number"),
    pytest.param({**event("x"), "properties": ["a"]}, "properties", id="properties array"),
    pytest.param({**event("x"), "properties": "a=1"}, "properties", id="properties string"),
    pytest.param({**event("x"), "properties": None}, "properties", id="properties null"),
    pytest.param(
        {**event("x"), "properties": {"note": "nul\x00byte"}}, "properties", id="NUL in property"
    ),
    pytest.param(
        {**event("x"), "timestamp": stamp(NOW + dt.timedelta(hours=24, seconds=1))},
        "timestamp",
        id="over 24 h in the future",
    ),
    pytest.param(
        {**event("x"), "timestamp": stamp(NOW - dt.timedelta(days=34, seconds=1))},
        "timestamp",
        id="over 34 days old",
    ),
]


def test_a_bad_event_rejects_the_whole_batch_naming_index_and_field(
    client: httpx.Client, subtests: pytest.Subtests
) -> None:
    # One sandbox for every case (subtests): a fresh database per case would cost ~1 s each.
    for case in BAD_EVENTS:
        bad, field = case.values
        with subtests.test(case.id):
            response = _post(client, [GOOD, bad])
            assert response.status_code == 400
            assert f"events[1].{field}" in _message(response)
            assert stored(client) == []  # atomic: the good event at index 0 was not stored


def test_a_non_object_event_is_named_by_index(client: httpx.Client) -> None:
    response = _post(client, [GOOD, GOOD, "event"])
    assert response.status_code == 400
    assert "events[2]" in _message(response)


def test_batch_shape_is_checked(client: httpx.Client, subtests: pytest.Subtests) -> None:
    cases = {
        "empty array": ([], "at least 1"),
        "101 events": ([event(f"t{i}") for i in range(101)], "at most 100"),
        "object instead of array": (GOOD, "array"),
    }
    for name, (body, expected) in cases.items():
        with subtests.test(name):
            response = _post(client, body)
            assert response.status_code == 400
            assert expected in _message(response)
            assert stored(client) == []


def test_invalid_json_and_nan_are_rejected(client: httpx.Client) -> None:
    for body in (b"[{", b'[{"transaction_id": NaN}]'):
        response = client.post("/v1/ingest", content=body)
        assert response.status_code == 400
        assert "not valid JSON" in _message(response)


def test_limits_at_the_boundaries_are_accepted(client: httpx.Client) -> None:
    batch = [event(f"edge-{i}") for i in range(98)]
    batch.append(event("old-edge", timestamp=NOW - dt.timedelta(days=34)))
    batch.append(event("t" * 128, timestamp=NOW + dt.timedelta(hours=24)))
    response = _post(client, batch)
    assert response.status_code == 200
    assert response.content == b""
    assert len(stored(client)) == 100


def test_timestamps_with_offsets_and_fractions_are_normalized_to_utc(client: httpx.Client) -> None:
    batch = [
        event("offset", timestamp="2025-03-15T13:30:00+02:00"),
        event("fraction", timestamp="2025-03-15T10:00:00.123456789z"),
    ]
    assert _post(client, batch).status_code == 200
    assert [e["timestamp"] for e in stored(client)] == [
        "2025-03-15T11:30:00Z",
        "2025-03-15T10:00:00.123456Z",
    ]


def test_backdating_follows_the_clock_override(client: httpx.Client) -> None:
    old = event("january", timestamp="2025-01-20T00:00:00Z")
    response = _post(client, [old])
    assert response.status_code == 400
    assert "more than 34 days in the past" in _message(response)
    clock = client.post("/sandbox/clock", json={"now": "2025-02-01T00:00:00Z"})
    assert clock.json() == {"now": "2025-02-01T00:00:00Z", "frozen": True}
    assert _post(client, [old]).status_code == 200
    assert client.post("/sandbox/clock", json={"now": None}).json()["frozen"] is False
    assert [e["transaction_id"] for e in stored(client)] == ["january"]


def test_bad_or_missing_token_is_401_and_stores_nothing(
    sandbox: str, client: httpx.Client, subtests: pytest.Subtests
) -> None:
    for authorization in (None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"):
        with subtests.test(str(authorization)):
            headers = {} if authorization is None else {"Authorization": authorization}
            response = httpx.post(f"{sandbox}/v1/ingest", json=[GOOD], headers=headers)
            assert response.status_code == 401
            assert "Unauthorized" in _message(response)
            assert stored(client) == []


def test_gzip_bodies_are_accepted(client: httpx.Client) -> None:
    body = gzip.compress(jsonutil.dumps([GOOD, event("good-1")]).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = client.post("/v1/ingest", content=body, headers=headers)
    assert response.status_code == 200
    assert [e["transaction_id"] for e in stored(client)] == ["good-0", "good-1"]


def test_corrupt_gzip_and_unknown_encodings_are_refused(client: httpx.Client) -> None:
    corrupt = client.post("/v1/ingest", content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert corrupt.status_code == 400
    brotli = client.post("/v1/ingest", content=b"[]", headers={"Content-Encoding": "br"})
    assert brotli.status_code == 415
    assert stored(client) == []


def test_rate_limit_answers_429_with_the_metronome_header(client: httpx.Client) -> None:
    assert client.post("/sandbox/config", json={"rate_limit": 1}).status_code == 200
    # A full bucket lets one oversized batch through and goes 99 events into debt.
    assert _post(client, [event(f"burst-{i}") for i in range(100)]).status_code == 200
    limited = _post(client, [event("one-more")])
    assert limited.status_code == 429
    assert limited.headers["X-Metronome-Rate-Limit-Type"] == "client"
    assert int(limited.headers["Retry-After"]) >= 90
    assert int(limited.headers["retry-after-ms"]) >= 90_000
    assert "rate limit" in _message(limited)
    assert len(stored(client)) == 100
    assert client.post("/sandbox/config", json={"rate_limit": None}).status_code == 200
    assert _post(client, [event("one-more")]).status_code == 200


def test_duplicates_across_batches_are_ignored_with_200(client: httpx.Client) -> None:
    assert _post(client, [event("dup", "2")]).status_code == 200
    assert _post(client, [event("dup", "2"), event("new", "3")]).status_code == 200
    assert [e["transaction_id"] for e in stored(client)] == ["dup", "new"]
    assert usage_value(client) == Decimal(5)


def test_duplicates_within_one_batch_keep_the_first(client: httpx.Client) -> None:
    assert _post(client, [event("twice", "1"), event("twice", "7")]).status_code == 200
    events = stored(client)
    assert [(e["transaction_id"], e["properties"]["events_sent"]) for e in events] == [
        ("twice", "1")
    ]
    assert usage_value(client) == Decimal(1)


def test_dedupe_window_is_34_days(client: httpx.Client) -> None:
    assert _post(client, [event("monthly")]).status_code == 200
    later = NOW + dt.timedelta(days=33)
    client.post("/sandbox/clock", json={"now": stamp(later)})
    assert _post(client, [event("monthly", timestamp=later)]).status_code == 200
    assert len(stored(client)) == 1  # still inside the window: a duplicate
    much_later = NOW + dt.timedelta(days=35)
    client.post("/sandbox/clock", json={"now": stamp(much_later)})
    assert _post(client, [event("monthly", timestamp=much_later)]).status_code == 200
    assert len(stored(client)) == 2  # the first acceptance has left the window


def test_fault_rate_one_fails_before_storing(client: httpx.Client) -> None:
    client.post("/sandbox/config", json={"fault_rate": 1, "fault_seed": 7})
    statuses = {_post(client, [event(f"f{i}")]).status_code for i in range(20)}
    assert statuses == {500, 503}  # both kinds occur with this seed
    assert stored(client) == []
    client.post("/sandbox/config", json={"fault_rate": 0})
    assert _post(client, [event("f0")]).status_code == 200
    assert len(stored(client)) == 1


def test_fault_seed_makes_faults_reproducible(client: httpx.Client) -> None:
    def run() -> list[int]:
        client.post("/sandbox/config", json={"fault_rate": 0.5, "fault_seed": 42})
        return [_post(client, [event(f"s{i}")]).status_code for i in range(12)]

    first = run()
    assert set(first) > {200}  # some faults, some successes
    assert run() == first


def test_lost_ack_stores_then_answers_500_and_the_retry_is_a_duplicate(
    client: httpx.Client,
) -> None:
    client.post("/sandbox/config", json={"lost_ack_rate": 1})
    batch = [event("ack-0", "4"), event("ack-1", "6")]
    lost = _post(client, batch)
    assert lost.status_code == 500
    assert "stored" in _message(lost)
    assert len(stored(client)) == 2
    client.post("/sandbox/config", json={"lost_ack_rate": 0})
    assert _post(client, batch).status_code == 200
    assert len(stored(client)) == 2
    assert usage_value(client) == Decimal(10)
    found = client.post("/v1/events/search", json={"transactionIds": ["ack-0"]}).json()
    assert [e["is_duplicate"] for e in found] == [False, True]


def test_rejected_customers_get_400_until_the_cause_is_fixed(client: httpx.Client) -> None:
    client.post("/sandbox/config", json={"reject_customer_ids": ["cust_blocked"]})
    batch = [event("ok"), event("blocked", customer_id="cust_blocked")]
    response = _post(client, batch)
    assert response.status_code == 400
    assert "events[1].customer_id" in _message(response)
    assert stored(client) == []
    config = client.post("/sandbox/config", json={"reject_customer_ids": []}).json()
    assert config["reject_customer_ids"] == []
    assert _post(client, batch).status_code == 200  # the redrive
    assert len(stored(client)) == 2


def test_config_is_validated_and_unchanged_on_error(client: httpx.Client) -> None:
    before = client.get("/sandbox/config").json()
    for body in ({"fault_rate": 2}, {"latency_ms": -1}, {"rate_limit": 0}, {"colour": "red"}):
        assert client.post("/sandbox/config", json=body).status_code == 400
    assert client.get("/sandbox/config").json() == before


def test_latency_delays_answers(client: httpx.Client) -> None:
    client.post("/sandbox/config", json={"latency_ms": 300})
    started = time.perf_counter()
    assert _post(client, [GOOD]).status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_events_survive_a_restart(settings: SandboxSettings) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with running_sandbox(settings) as first:
        assert httpx.post(f"{first}/v1/ingest", json=[GOOD], headers=headers).status_code == 200
    with (
        running_sandbox(settings) as second,
        httpx.Client(base_url=second, headers=headers) as client,
    ):
        assert [e["transaction_id"] for e in stored(client)] == ["good-0"]
        # and the restarted sandbox still remembers the transaction id
        assert client.post("/v1/ingest", json=[GOOD]).status_code == 200
        assert len(stored(client)) == 1


def test_sums_are_exact_decimals(client: httpx.Client) -> None:
    batch = [
        event("a", "0.1"),
        event("b", "0.2"),
        event("c", "12345678901234567890.123456789", customer_id="cust_big"),
        event("d", "0.000000001", customer_id="cust_big"),
    ]
    assert _post(client, batch).status_code == 200
    assert usage_value(client) == Decimal("0.3")
    assert usage_value(client, "cust_big") == Decimal("12345678901234567890.12345679")


def test_json_number_properties_are_summed_exactly_and_kept_verbatim(client: httpx.Client) -> None:
    body = b"""[
      {"transaction_id": "n1", "customer_id": "cust_a", "event_type": "events_sent",
       "timestamp": "2025-03-15T10:00:00Z", "properties": {"events_sent": 0.1}},
      {"transaction_id": "n2", "customer_id": "cust_a", "event_type": "events_sent",
       "timestamp": "2025-03-15T10:00:00Z", "properties": {"events_sent": 0.2}}
    ]"""
    response = client.post("/v1/ingest", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert usage_value(client) == Decimal("0.3")
    raw = client.get("/sandbox/events").text
    assert '"events_sent":0.1}' in raw and '"events_sent":0.2}' in raw


def test_sandbox_events_filters(client: httpx.Client) -> None:
    batch = [
        event("a1", customer_id="cust_a"),
        event("b1", customer_id="cust_b"),
        event("b2", "5", customer_id="cust_b", event_type="fin_resolutions"),
    ]
    assert _post(client, batch).status_code == 200
    assert [e["transaction_id"] for e in stored(client, customer_id="cust_b")] == ["b1", "b2"]
    only = stored(client, customer_id="cust_b", event_type="fin_resolutions")
    assert [e["transaction_id"] for e in only] == ["b2"]


def test_the_test_aids_require_the_token_too(
    sandbox: str, client: httpx.Client, subtests: pytest.Subtests
) -> None:
    assert client.post("/v1/ingest", json=[GOOD]).status_code == 200
    aids = [
        ("GET", "/sandbox/events", None),
        ("GET", "/sandbox/config", None),
        ("POST", "/sandbox/config", {"fault_rate": 1}),
        ("GET", "/sandbox/clock", None),
        ("POST", "/sandbox/clock", {"now": "2030-01-01T00:00:00Z"}),
        ("GET", "/sandbox/health", None),
    ]
    for method, path, body in aids:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            with subtests.test(f"{method} {path} {headers}"):
                response = httpx.request(method, f"{sandbox}{path}", json=body, headers=headers)
                assert response.status_code == 401
                assert "Unauthorized" in _message(response)
    # nothing changed behind the refusals
    assert client.get("/sandbox/config").json()["fault_rate"] == 0
    assert client.get("/sandbox/clock").json()["now"] == "2025-03-15T12:00:00Z"
    assert len(stored(client)) == 1
