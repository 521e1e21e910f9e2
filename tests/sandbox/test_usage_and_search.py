"""POST /v1/usage (windows, filters, group_by, pagination) and POST /v1/events/search."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import httpx
import pytest

from metronome_sandbox import jsonutil, usage
from metronome_sandbox.metrics import load as load_metrics
from metronome_sandbox.store import Store
from tests.sandbox.conftest import EVENTS_SENT_ID, event

pytestmark = pytest.mark.integration

FIN_ID = next(m.id for m in load_metrics() if m.name == "fin_resolutions")
DAY_14 = "2025-03-14T00:00:00Z"
DAY_15 = "2025-03-15T00:00:00Z"
DAY_16 = "2025-03-16T00:00:00Z"


def _usage(client: httpx.Client, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = client.post("/v1/usage", json=body, params=params)
    assert response.status_code == 200, response.text
    return jsonutil.loads(response.content)


def _ingest(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    assert client.post("/v1/ingest", json=events).status_code == 200


@pytest.fixture
def month_of_events(client: httpx.Client) -> httpx.Client:
    """Two customers, two days, two metrics; one late correction grouped by corrects_window."""
    _ingest(
        client,
        [
            event("a-14", "2", timestamp="2025-03-14T05:10:00Z"),
            event("a-15a", "3", timestamp="2025-03-15T05:20:00Z"),
            event("a-15b", "4.5", timestamp="2025-03-15T06:00:00Z"),
            event("a-fix", "-1", timestamp="2025-03-15T07:00:00Z", corrects_window="2025-01-10"),
            event("b-15", "10", customer_id="cust_b", timestamp="2025-03-15T08:00:00Z"),
            event("a-fin", "1", event_type="fin_resolutions", timestamp="2025-03-15T09:00:00Z"),
            event("a-odd", "n/a", timestamp="2025-03-15T09:00:00Z"),
            event("other", "99", event_type="not_a_metric", timestamp="2025-03-15T09:00:00Z"),
        ],
    )
    return client


def _values(body: dict[str, Any]) -> list[tuple[str, str, str, Decimal]]:
    return [
        (row["customer_id"], row["billable_metric_name"], row["start_timestamp"], row["value"])
        for row in body["data"]
    ]


def test_day_windows_per_customer_and_metric(month_of_events: httpx.Client) -> None:
    body = _usage(
        month_of_events,
        {
            "window_size": "DAY",
            "starting_on": DAY_14,
            "ending_before": DAY_16,
            "billable_metrics": [{"id": EVENTS_SENT_ID}, {"id": FIN_ID}],
        },
    )
    assert body["next_page"] is None
    assert _values(body) == [
        ("cust_a", "events_sent", DAY_14, Decimal(2)),
        ("cust_a", "events_sent", DAY_15, Decimal("6.5")),
        ("cust_a", "fin_resolutions", DAY_14, Decimal(0)),
        ("cust_a", "fin_resolutions", DAY_15, Decimal(1)),
        ("cust_b", "events_sent", DAY_14, Decimal(0)),
        ("cust_b", "events_sent", DAY_15, Decimal(10)),
        ("cust_b", "fin_resolutions", DAY_14, Decimal(0)),
        ("cust_b", "fin_resolutions", DAY_15, Decimal(0)),
    ]
    assert body["data"][0]["end_timestamp"] == DAY_15


def test_hour_and_none_windows(month_of_events: httpx.Client) -> None:
    base = {"customer_ids": ["cust_a"], "billable_metrics": [{"id": EVENTS_SENT_ID}]}
    hours = _usage(
        month_of_events,
        {**base, "window_size": "hour", "starting_on": DAY_15, "ending_before": DAY_16},
    )
    assert len(hours["data"]) == 24
    nonzero = [(row["start_timestamp"], row["value"]) for row in hours["data"] if row["value"]]
    assert nonzero == [
        ("2025-03-15T05:00:00Z", Decimal(3)),
        ("2025-03-15T06:00:00Z", Decimal("4.5")),
        ("2025-03-15T07:00:00Z", Decimal(-1)),
    ]
    whole = _usage(
        month_of_events,
        {**base, "window_size": "None", "starting_on": DAY_14, "ending_before": DAY_16},
    )
    assert _values(whole) == [("cust_a", "events_sent", DAY_14, Decimal("8.5"))]
    assert whole["data"][0]["end_timestamp"] == DAY_16


def test_all_metrics_and_customers_by_default(month_of_events: httpx.Client) -> None:
    body = _usage(
        month_of_events, {"window_size": "none", "starting_on": DAY_14, "ending_before": DAY_16}
    )
    assert len(body["data"]) == 2 * len(load_metrics())
    totals = {(r["customer_id"], r["billable_metric_name"]): r["value"] for r in body["data"]}
    assert totals[("cust_b", "events_sent")] == Decimal(10)
    assert totals[("cust_b", "riskified_approved_value")] == Decimal(0)


def test_group_by_corrects_window(month_of_events: httpx.Client) -> None:
    grouped = {"id": EVENTS_SENT_ID, "group_by": {"key": "corrects_window"}}
    query = {
        "window_size": "none",
        "starting_on": DAY_14,
        "ending_before": DAY_16,
        "customer_ids": ["cust_a", "cust_b"],
        "billable_metrics": [grouped],
    }
    rows = _usage(month_of_events, query)["data"]
    assert [(r["customer_id"], r["value"], r["groups"]) for r in rows] == [
        ("cust_a", Decimal("8.5"), {"2025-01-10": Decimal(-1)}),
        ("cust_b", Decimal(10), {}),
    ]
    grouped["group_by"]["values"] = ["2025-01-10", "2025-02-01"]
    rows = _usage(month_of_events, query)["data"]
    assert rows[0]["groups"] == {"2025-01-10": Decimal(-1), "2025-02-01": None}
    assert rows[1]["groups"] == {"2025-01-10": None, "2025-02-01": None}


def test_pagination_walks_every_row_once(month_of_events: httpx.Client) -> None:
    query = {"window_size": "hour", "starting_on": DAY_14, "ending_before": DAY_16}
    everything = _usage(month_of_events, query, limit=1000)["data"]
    assert len(everything) == 2 * len(load_metrics()) * 48
    pages, cursor = [], None
    while True:
        params = {"limit": 50, **({"next_page": cursor} if cursor else {})}
        body = _usage(month_of_events, query, **params)
        pages.append(body["data"])
        cursor = body["next_page"]
        if cursor is None:
            break
    assert [len(page) for page in pages[:-1]] == [50] * (len(pages) - 1)
    assert [row for page in pages for row in page] == everything


def _walk(client: httpx.Client, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    rows, cursor = [], None
    while True:
        params = {"limit": limit, **({"next_page": cursor} if cursor else {})}
        body = _usage(client, query, **params)
        rows += body["data"]
        cursor = body["next_page"]
        if cursor is None:
            return rows


def test_pages_of_named_customers_walk_the_same_rows(month_of_events: httpx.Client) -> None:
    # Repeated and usage-less customers, group_by values, and pages that split a customer.
    query = {
        "window_size": "day",
        "starting_on": DAY_14,
        "ending_before": DAY_16,
        "customer_ids": ["cust_b", "nobody", "cust_a", "cust_b"],
        "billable_metrics": [
            {"id": FIN_ID},
            {"id": EVENTS_SENT_ID, "group_by": {"key": "corrects_window"}},
        ],
    }
    everything = _usage(month_of_events, query, limit=1000)["data"]
    assert [row["customer_id"] for row in everything] == ["cust_b"] * 4 + ["nobody"] * 4 + [
        "cust_a"
    ] * 4
    assert everything[-1]["groups"] == {"2025-01-10": Decimal(-1)}
    for limit in (1, 3, 4, 5):
        assert _walk(month_of_events, query, limit) == everything


def test_a_walk_continues_where_it_was_when_customers_appear_before_it(
    month_of_events: httpx.Client,
) -> None:
    """Keyset pages: a customer whose first usage arrives mid-walk, sorting before the cursor,
    neither repeats nor hides rows of the customers still to come."""
    query = {
        "window_size": "none",
        "starting_on": DAY_14,
        "ending_before": DAY_16,
        "billable_metrics": [{"id": EVENTS_SENT_ID}],
    }
    first = _usage(month_of_events, query, limit=1)
    assert [row["customer_id"] for row in first["data"]] == ["cust_a"]
    _ingest(month_of_events, [event("early", "5", customer_id="cust_0", timestamp=DAY_15)])
    rest = _usage(month_of_events, query, limit=10, next_page=first["next_page"])
    assert [(row["customer_id"], row["value"]) for row in rest["data"]] == [("cust_b", Decimal(10))]
    assert rest["next_page"] is None


class CountingStore(Store):
    """The real store, remembering which customers each aggregation covered."""

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        self.aggregated: list[list[str]] = []

    def usage(self, metrics: Any, *args: Any) -> Any:
        self.aggregated.append(list(args[-1]))
        return super().usage(metrics, *args)


def test_a_page_aggregates_only_its_own_customers(client: httpx.Client, database_url: str) -> None:
    names = [f"cust_{n:02d}" for n in range(30)]
    _ingest(client, [event(f"e-{name}", "1", customer_id=name) for name in names])
    query = usage.parse_query(
        {"window_size": "none", "starting_on": DAY_14, "ending_before": DAY_16},
        load_metrics(),
    )
    store = CountingStore(database_url)
    try:
        start, pages = None, 0
        while True:
            _, cursor = usage.usage_page(store, query, start, 10)
            pages += 1
            if cursor is None:
                break
            start = usage.decode_cursor(cursor, query)
    finally:
        store.dispose()
    per_customer = len(load_metrics())
    assert pages == -(-len(names) * per_customer // 10)
    # Ten rows span at most three customers' blocks of seven; together the pages aggregate each
    # customer once, plus once more per page boundary inside its block: never the whole answer.
    assert all(len(customers) <= 3 for customers in store.aggregated)
    assert sorted({name for page in store.aggregated for name in page}) == names
    assert sum(len(customers) for customers in store.aggregated) <= len(names) + pages - 1


def test_forged_cursors_are_400(month_of_events: httpx.Client) -> None:
    query = {"window_size": "hour", "starting_on": DAY_14, "ending_before": DAY_16}
    cursor = _usage(month_of_events, query, limit=5)["next_page"]
    payload = jsonutil.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for forged in ({"row": -1}, {"row": 10**6}, {"customer": 3}, {"row": "5"}, {"row": True}):
        text = jsonutil.dumps({**payload, **forged})
        bad = base64.urlsafe_b64encode(text.encode()).decode()
        response = month_of_events.post("/v1/usage", json=query, params={"next_page": bad})
        assert response.status_code == 400, forged
        assert "next_page" in response.json()["message"]


def test_default_page_size_is_100(month_of_events: httpx.Client) -> None:
    query = {"window_size": "hour", "starting_on": DAY_14, "ending_before": DAY_16}
    first = _usage(month_of_events, query)
    assert len(first["data"]) == 100
    assert isinstance(first["next_page"], str)


ONE_DAY = {"window_size": "day", "starting_on": DAY_14, "ending_before": DAY_15}
UNKNOWN_METRIC = {"id": "00000000-0000-0000-0000-000000000000"}
NO_GROUP_VALUES = {"id": EVENTS_SENT_ID, "group_by": {"key": "k", "values": []}}
# name: (body, query parameters, words the 400 message must contain)
BAD_QUERIES = {
    "unknown window": ({**ONE_DAY, "window_size": "week"}, {}, "window_size"),
    "no start": ({**ONE_DAY, "starting_on": None}, {}, "starting_on"),
    "end before start": ({**ONE_DAY, "starting_on": DAY_16}, {}, "after"),
    "not midnight": ({**ONE_DAY, "starting_on": "2025-03-14T01:00:00Z"}, {}, "aligned"),
    "unknown metric": ({**ONE_DAY, "billable_metrics": [UNKNOWN_METRIC]}, {}, "unknown billable"),
    "no group values": ({**ONE_DAY, "billable_metrics": [NO_GROUP_VALUES]}, {}, "group_by.values"),
    "limit 0": (ONE_DAY, {"limit": 0}, "limit"),
    "bad cursor": (ONE_DAY, {"next_page": "garbage"}, "next_page"),
}


def test_bad_usage_queries_are_400(client: httpx.Client, subtests: pytest.Subtests) -> None:
    for name, (body, params, expected) in BAD_QUERIES.items():
        with subtests.test(name):
            response = client.post("/v1/usage", json=body, params=params)
            assert response.status_code == 400
            assert expected in response.json()["message"]


def test_a_cursor_only_continues_its_own_query(month_of_events: httpx.Client) -> None:
    query = {"window_size": "hour", "starting_on": DAY_14, "ending_before": DAY_16}
    cursor = _usage(month_of_events, query, limit=5)["next_page"]
    other = {**query, "customer_ids": ["cust_a"]}
    response = month_of_events.post("/v1/usage", json=other, params={"next_page": cursor})
    assert response.status_code == 400
    assert "different query" in response.json()["message"]


def test_usage_requires_the_token(sandbox: str) -> None:
    query = {"window_size": "day", "starting_on": DAY_14, "ending_before": DAY_15}
    assert httpx.post(f"{sandbox}/v1/usage", json=query).status_code == 401


def test_search_returns_events_with_duplicate_flags(client: httpx.Client) -> None:
    _ingest(client, [event("s1", "2"), event("s2", "3", event_type="unmetered")])
    _ingest(client, [event("s1", "2")])
    response = client.post("/v1/events/search", json={"transactionIds": ["s1", "s2", "nope"]})
    assert response.status_code == 200
    found = jsonutil.loads(response.content)
    assert [(e["transaction_id"], e["is_duplicate"]) for e in found] == [
        ("s1", False),
        ("s2", False),
        ("s1", True),
    ]
    assert found[0]["properties"] == {"events_sent": "2"}
    assert [m["name"] for m in found[0]["matched_billable_metrics"]] == ["events_sent"]
    assert found[1]["matched_billable_metrics"] == []


def test_search_needs_transaction_ids(client: httpx.Client) -> None:
    for body in ({}, {"transactionIds": "s1"}, {"transactionIds": [1, "a\x00"]}, []):
        response = client.post("/v1/events/search", json=body)
        assert response.status_code == 400
        assert "transactionIds" in response.json()["message"]
