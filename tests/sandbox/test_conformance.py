"""The sandbox's requests and answers against Metronome's published OpenAPI schemas.

The schemas ship with the sandbox (metronome_sandbox/openapi/, copied verbatim from Metronome's
document), so drift from Metronome's contract fails the build. Requests are validated as if sent to
the document's server. The three operations declare no error responses; Metronome's status-code
docs give every error the shared `Error` schema, so error bodies are checked against that.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

import metronome_sandbox
from tests.sandbox.conftest import EVENTS_SENT_ID, NOW, TOKEN, event, stamp

pytestmark = pytest.mark.integration

SPEC_PATH = Path(metronome_sandbox.__file__).parent / "openapi" / "metronome-openapi-usage.yaml"
SPEC_DOCUMENT = yaml.safe_load(SPEC_PATH.read_text())
SPEC = OpenAPI.from_dict(SPEC_DOCUMENT)
SPEC_SERVER = SPEC_DOCUMENT["servers"][0]["url"]
ERROR_SCHEMA = OAS30Validator(SPEC_DOCUMENT["components"]["schemas"]["Error"])
# Metronome answers /v1/usage with its own customer UUIDs: use UUIDs as customer ids here.
CUSTOMER_A, CUSTOMER_B = (str(uuid.UUID(int=n)) for n in (10, 11))
DAY = "2025-03-15T00:00:00Z"
NEXT_DAY = "2025-03-16T00:00:00Z"


class SpecRequest:
    """An httpx request seen through openapi-core's Request protocol."""

    def __init__(self, request: httpx.Request) -> None:
        self.host_url = SPEC_SERVER
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = request.content
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(request.url.params.multi_items()),
            header=Headers(list(request.headers.items())),
        )


class SpecResponse:
    """An httpx response seen through openapi-core's Response protocol."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(list(response.headers.items()))
        self.data = response.content


class Exchange:
    """Send requests to the sandbox, keeping each request for validation."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def send(self, path: str, body: Any, token: str | None = TOKEN, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = self.client.build_request("POST", path, json=body, params=params, headers=headers)
        return request, self.client.send(request)


def assert_conforms(request: httpx.Request, response: httpx.Response) -> None:
    """A successful exchange: request and answer both match the published operation."""
    assert response.status_code == 200, response.text
    SPEC.validate_request(SpecRequest(request))
    SPEC.validate_response(SpecRequest(request), SpecResponse(response))


def assert_error_envelope(response: httpx.Response, status: int) -> None:
    """An error answer: the expected status and a body matching the shared Error schema."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    ERROR_SCHEMA.validate(response.json())


def spec_accepts(request: httpx.Request) -> bool:
    """Whether the published schema accepts a request."""
    try:
        SPEC.validate_request(SpecRequest(request))
    except OpenAPIError:
        return False
    return True


@pytest.fixture
def exchange(sandbox: str) -> Iterator[Exchange]:
    """Requests without default headers: each call states its own Authorization."""
    with httpx.Client(base_url=sandbox, timeout=10) as client:
        yield Exchange(client)


def _usage_body(**extra: Any) -> dict[str, Any]:
    return {"window_size": "day", "starting_on": DAY, "ending_before": NEXT_DAY, **extra}


def test_ingest_exchanges_conform(exchange: Exchange, client: httpx.Client) -> None:
    batch = [
        event("c1", "1.5", customer_id=CUSTOMER_A, region="eu"),
        event("c2", 2, customer_id=CUSTOMER_B, event_type="fin_resolutions"),
    ]
    assert_conforms(*exchange.send("/v1/ingest", batch))
    assert_conforms(*exchange.send("/v1/ingest", batch))  # duplicates: same 200
    # requests the published schema refuses are refused by the sandbox as well
    for bad in ([], [event(str(n)) for n in range(101)], [{**batch[0], "event_type": ""}]):
        request, response = exchange.send("/v1/ingest", bad)
        assert not spec_accepts(request)
        assert_error_envelope(response, 400)
    assert_error_envelope(exchange.send("/v1/ingest", batch, token="wrong")[1], 401)
    client.post("/sandbox/config", json={"fault_rate": 1, "fault_seed": 7})
    faults = [exchange.send("/v1/ingest", batch)[1] for _ in range(8)]
    for response in faults:
        assert_error_envelope(response, response.status_code)
    assert {response.status_code for response in faults} == {500, 503}
    client.post("/sandbox/config", json={"fault_rate": 0, "lost_ack_rate": 1})
    assert_error_envelope(exchange.send("/v1/ingest", batch)[1], 500)
    client.post("/sandbox/config", json={"lost_ack_rate": 0, "rate_limit": 1})
    exchange.send("/v1/ingest", [event(f"r{n}") for n in range(100)])
    limited = exchange.send("/v1/ingest", batch)[1]
    assert_error_envelope(limited, 429)
    assert limited.headers["X-Metronome-Rate-Limit-Type"] in ("client", "customer")


def test_usage_exchanges_conform(exchange: Exchange) -> None:
    exchange.send(
        "/v1/ingest",
        [
            event("u1", "0.1", customer_id=CUSTOMER_A, corrects_window="2025-01-01"),
            event("u2", "12345678901234567890.123456789", customer_id=CUSTOMER_B),
        ],
    )
    grouped = [{"id": EVENTS_SENT_ID, "group_by": {"key": "corrects_window"}}]
    valued = [{"id": EVENTS_SENT_ID, "group_by": {"key": "corrects_window", "values": ["x"]}}]
    bodies = [
        _usage_body(),
        _usage_body(window_size="HOUR", customer_ids=[CUSTOMER_A]),
        _usage_body(window_size="None", billable_metrics=grouped),
        _usage_body(window_size="Day", billable_metrics=valued, customer_ids=[CUSTOMER_B]),
    ]
    for body in bodies:
        cursor = None
        while True:
            params = {"next_page": cursor} if cursor else {}
            request, response = exchange.send("/v1/usage", body, **params)
            assert_conforms(request, response)
            cursor = response.json()["next_page"]
            if cursor is None:
                break
    for bad in (_usage_body(window_size="week"), _usage_body(starting_on=None)):
        request, response = exchange.send("/v1/usage", bad)
        assert not spec_accepts(request)
        assert_error_envelope(response, 400)
    assert_error_envelope(exchange.send("/v1/usage", _usage_body(), token=None)[1], 401)


def test_search_exchanges_conform(exchange: Exchange) -> None:
    exchange.send("/v1/ingest", [event("f1", customer_id=CUSTOMER_A), event("f2", event_type="x")])
    exchange.send("/v1/ingest", [event("f1", customer_id=CUSTOMER_A)])
    request, response = exchange.send("/v1/events/search", {"transactionIds": ["f1", "f2", "f3"]})
    assert_conforms(request, response)
    assert len(response.json()) == 3
    assert_conforms(*exchange.send("/v1/events/search", {"transactionIds": []}))
    request, response = exchange.send("/v1/events/search", {"ids": ["f1"]})
    assert not spec_accepts(request)
    assert_error_envelope(response, 400)
    assert_error_envelope(exchange.send("/v1/events/search", {"transactionIds": []}, "x")[1], 401)
    assert_error_envelope(exchange.client.get("/v1/events/search"), 405)
    assert_error_envelope(exchange.send("/v1/no-such-endpoint", {})[1], 404)


# JSON text: no NUL (PostgreSQL cannot store it) and no lone surrogates (not encodable as UTF-8).
_CHARACTERS = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
_TEXT = st.text(_CHARACTERS, max_size=6)
_VALUE = st.one_of(_TEXT, st.integers(), st.booleans(), st.none(), st.lists(st.integers()))


def _field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, _VALUE)


# Fields mostly valid, sometimes any JSON value; timestamps always RFC 3339 inside the window
# (the schema types timestamp as a bare string: its RFC 3339 rule is prose, checked elsewhere).
EVENTS = st.fixed_dictionaries(
    {
        "transaction_id": _field(st.text(_CHARACTERS, min_size=0, max_size=130)),
        "customer_id": _field(_TEXT),
        "event_type": _field(_TEXT),
        "timestamp": st.one_of(st.just(stamp(NOW)), st.integers(), st.none()),
        "properties": st.one_of(st.dictionaries(_TEXT, _VALUE, max_size=3), _VALUE),
        "extra": _VALUE,
    }
).flatmap(
    lambda full: st.sets(st.sampled_from(sorted(full))).map(
        lambda dropped: {key: value for key, value in full.items() if key not in dropped}
    )
)


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(EVENTS, max_size=3))
def test_sandbox_accepts_exactly_what_the_schema_accepts(
    exchange: Exchange, batch: list[dict[str, Any]]
) -> None:
    request, response = exchange.send("/v1/ingest", batch)
    assert response.status_code in (200, 400), response.text
    assert (response.status_code == 200) == spec_accepts(request), response.text
