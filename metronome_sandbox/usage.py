"""POST /v1/usage: parse the query, page the answer by customer, aggregate one page at a time.

Chosen where Metronome does not document: every requested (or seen) customer gets one row per
billable metric queried (all of them when `billable_metrics` is absent) and per window, value 0
when nothing matched; `groups` maps each group value seen in the window (or each requested value,
null when it had no events) to its sum; events without the group key count in `value` only.

Pages are keyset pages over customers: a cursor names the customer (and the row of its block) where
the next page starts, so a page aggregates only its own customers and costs the same whether it is
the first or the hundredth.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from metronome_sandbox import jsonutil
from metronome_sandbox.metrics import BillableMetric
from metronome_sandbox.store import Store, UsageAggregate
from metronome_sandbox.validation import (
    ValidationError,
    check_text,
    format_timestamp,
    parse_rfc3339,
)

WINDOWS = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "none": None}
MAX_PAGE_SIZE = 1000
MAX_GROUP_VALUES = 200


@dataclass(frozen=True)
class MetricQuery:
    """One billable metric of a usage query, optionally grouped by a property."""

    metric: BillableMetric
    group_key: str | None = None
    group_values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class UsageQuery:
    """A validated /v1/usage request body."""

    window_size: str
    starting_on: dt.datetime
    ending_before: dt.datetime
    customer_ids: tuple[str, ...] | None
    metrics: tuple[MetricQuery, ...]

    @property
    def stride(self) -> dt.timedelta:
        """Length of one window."""
        return WINDOWS[self.window_size] or self.ending_before - self.starting_on

    @property
    def window_count(self) -> int:
        """Number of windows in [starting_on, ending_before)."""
        return (self.ending_before - self.starting_on) // self.stride

    @property
    def rows_per_customer(self) -> int:
        """Rows of the answer per customer: one per metric queried and window."""
        return len(self.metrics) * self.window_count

    def fingerprint(self) -> str:
        """A short digest binding a page cursor to this query."""
        canonical = jsonutil.dumps(
            [
                self.window_size,
                format_timestamp(self.starting_on),
                format_timestamp(self.ending_before),
                self.customer_ids,
                [[m.metric.id, m.group_key, m.group_values] for m in self.metrics],
            ]
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _text_list(value: Any, field: str, minimum: int = 0) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) < minimum:
        raise ValidationError(f"{field} must be an array of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or check_text(item):
            raise ValidationError(f"{field}[{index}] must be a non-empty string")
    return tuple(value)


def _timestamp(body: dict[str, Any], field: str) -> dt.datetime:
    value = body.get(field)
    if not isinstance(value, str):
        raise ValidationError(f"{field} is required: an RFC 3339 date-time")
    try:
        return parse_rfc3339(value)
    except ValueError as error:
        raise ValidationError(f"{field}: {error}") from None


def _aligned(value: dt.datetime, window_size: str) -> bool:
    if window_size == "hour":
        return value.minute == value.second == value.microsecond == 0
    return value.time() == dt.time(0)


def _group_by(raw: Any, field: str) -> tuple[str | None, tuple[str, ...] | None]:
    if raw is None:
        return None, None
    key = raw.get("key") if isinstance(raw, dict) else None
    if not isinstance(key, str) or not key or check_text(key):
        raise ValidationError(f"{field} must be an object with a non-empty string key")
    if "values" not in raw:
        return key, None
    values = _text_list(raw["values"], f"{field}.values", minimum=1)
    if len(values) > MAX_GROUP_VALUES:
        raise ValidationError(f"{field}.values must hold at most {MAX_GROUP_VALUES} values")
    return key, values


def _metric_queries(raw: Any, known: Sequence[BillableMetric]) -> tuple[MetricQuery, ...]:
    if raw is None:
        return tuple(MetricQuery(metric) for metric in known)
    if not isinstance(raw, list):
        raise ValidationError("billable_metrics must be an array")
    by_id = {metric.id: metric for metric in known}
    queries: list[MetricQuery] = []
    for index, item in enumerate(raw):
        field = f"billable_metrics[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValidationError(f"{field} must be an object with a string id")
        metric = by_id.get(item["id"])
        if metric is None:
            raise ValidationError(f"{field}.id: unknown billable metric {item['id']!r}")
        if any(query.metric == metric for query in queries):
            raise ValidationError(f"{field}.id: billable metric {item['id']} is listed twice")
        key, values = _group_by(item.get("group_by"), f"{field}.group_by")
        queries.append(MetricQuery(metric, key, values))
    return tuple(queries)


def parse_query(body: Any, known: Sequence[BillableMetric]) -> UsageQuery:
    """Validate a /v1/usage body; ValidationError (400) names the bad field."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    window_size = body.get("window_size")
    if not isinstance(window_size, str) or window_size.lower() not in WINDOWS:
        raise ValidationError("window_size must be one of hour, day, none (any case)")
    window_size = window_size.lower()
    starting_on = _timestamp(body, "starting_on")
    ending_before = _timestamp(body, "ending_before")
    for field, value in (("starting_on", starting_on), ("ending_before", ending_before)):
        if not _aligned(value, window_size):
            unit = "an hour" if window_size == "hour" else "UTC midnight"
            raise ValidationError(f"{field} must be aligned to {unit}")
    if ending_before <= starting_on:
        raise ValidationError("ending_before must be after starting_on")
    customer_ids = body.get("customer_ids")
    return UsageQuery(
        window_size=window_size,
        starting_on=starting_on,
        ending_before=ending_before,
        customer_ids=None if customer_ids is None else _text_list(customer_ids, "customer_ids"),
        metrics=_metric_queries(body.get("billable_metrics"), known),
    )


@dataclass(frozen=True)
class Position:
    """Where a page starts: the `row`-th row of a customer's block of rows. The customer is its
    id when the answer lists the customers with usage (keyset: byte order of ids), or its index
    in the request's `customer_ids` when the request names them."""

    customer: str | int
    row: int


def encode_cursor(position: Position, query: UsageQuery) -> str:
    """An opaque next_page cursor, bound to the query."""
    raw = jsonutil.dumps(
        {"customer": position.customer, "row": position.row, "query": query.fingerprint()}
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: UsageQuery) -> Position:
    """The position of a cursor made by encode_cursor for the same query."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = jsonutil.loads(base64.urlsafe_b64decode(padded.encode()))
        customer, row, fingerprint = raw["customer"], raw["row"], raw["query"]
    except (ValueError, binascii.Error, TypeError, KeyError):
        raise ValidationError("next_page is not a valid cursor") from None
    if fingerprint != query.fingerprint():
        raise ValidationError("next_page belongs to a different query: re-send the same body")
    customer_type = str if query.customer_ids is None else int
    valid = (
        type(customer) is customer_type
        and type(row) is int
        and 0 <= row < query.rows_per_customer
        and (customer_type is str or customer >= 0)
    )
    if not valid:
        raise ValidationError("next_page is not a valid cursor")
    return Position(customer, row)


class _Aggregates:
    """The store's rows indexed for page assembly."""

    def __init__(self, rows: Sequence[UsageAggregate]) -> None:
        self.totals: dict[tuple[str, str, dt.datetime], Decimal] = {}
        self.groups: dict[tuple[str, str, dt.datetime], dict[str, Decimal]] = {}
        for row in rows:
            key = (row.customer_id, row.metric_id, row.window_start)
            if row.is_group and row.group_value is not None:
                self.groups.setdefault(key, {})[row.group_value] = row.value
            else:
                self.totals[key] = row.value


def _row(query: UsageQuery, aggregates: _Aggregates, customer: str, index: int) -> Any:
    """Row `index` of a customer's block: metrics in query order, windows in time order."""
    windows = query.window_count
    metric_query = query.metrics[index // windows]
    start = query.starting_on + query.stride * (index % windows)
    key = (customer, metric_query.metric.id, start)
    row: dict[str, Any] = {
        "customer_id": customer,
        "billable_metric_id": metric_query.metric.id,
        "billable_metric_name": metric_query.metric.name,
        "start_timestamp": format_timestamp(start),
        "end_timestamp": format_timestamp(start + query.stride),
        "value": aggregates.totals.get(key, Decimal(0)),
    }
    if metric_query.group_key is not None:
        seen = aggregates.groups.get(key, {})
        values = metric_query.group_values or sorted(seen)
        row["groups"] = {value: seen.get(value) for value in values}
    return row


def _page_customers(
    store: Store, query: UsageQuery, start: Position | None, count: int
) -> tuple[list[str], list[str | int]]:
    """Up to `count` customers from the page's start on, with the cursor key of each."""
    if query.customer_ids is not None:
        named = list(dict.fromkeys(query.customer_ids))
        first = int(start.customer) if start else 0
        chosen = named[first : first + count]
        return chosen, list(range(first, first + len(chosen)))
    event_types = sorted({q.metric.event_type for q in query.metrics})
    after = str(start.customer) if start else ""
    chosen = store.usage_customers(
        event_types, query.starting_on, query.ending_before, after, count
    )
    return chosen, list(chosen)


def usage_page(
    store: Store, query: UsageQuery, start: Position | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of at most `limit` usage rows from `start` (None: the first page) and the cursor
    of the next page (None at the end). Rows come per customer, each customer's block holding
    every metric queried and every window; only the page's customers are aggregated."""
    per_customer = query.rows_per_customer
    if per_customer == 0:
        return [], None
    skip = start.row if start else 0
    covering = -(-(skip + limit) // per_customer)  # customers the page's rows come from
    customers, keys = _page_customers(store, query, start, covering + 1)  # +1: is there more?
    covered = customers[:covering]
    metrics = [
        {
            "metric_id": q.metric.id,
            "event_type": q.metric.event_type,
            "property": q.metric.property,
            "group_key": q.group_key,
        }
        for q in query.metrics
    ]
    aggregates = _Aggregates(
        store.usage(metrics, query.starting_on, query.ending_before, query.stride, covered)
        if covered
        else []
    )
    end = min(skip + limit, len(covered) * per_customer)
    data = [
        _row(query, aggregates, covered[index // per_customer], index % per_customer)
        for index in range(skip, end)
    ]
    following = end // per_customer
    if following >= len(customers):
        return data, None
    return data, encode_cursor(Position(keys[following], end % per_customer), query)
