"""Validation of ingest batches against Metronome's published Event schema and ingest rules."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_BATCH = 100
MAX_TRANSACTION_ID = 128
BACKDATING_LIMIT = dt.timedelta(days=34)
FUTURE_LIMIT = dt.timedelta(hours=24)
MAX_ERRORS_SHOWN = 10
# PostgreSQL numeric (hence jsonb) holds at most 131072 digits before and 16383 after the point.
MAX_ADJUSTED_EXPONENT = 131_000
MIN_EXPONENT = -16_000

# RFC 3339 date-time: 4-digit year, mandatory offset.
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})"
)


class ValidationError(ValueError):
    """A request the sandbox answers with 400 {"message": str(error)}."""


@dataclass(frozen=True)
class Event:
    """One validated usage event; `timestamp` is UTC."""

    transaction_id: str
    customer_id: str
    event_type: str
    timestamp: dt.datetime
    properties: dict[str, Any]


def parse_rfc3339(text: str) -> dt.datetime:
    """An aware UTC datetime from an RFC 3339 date-time; ValueError when malformed."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("must be an RFC 3339 date-time with a 4-digit year and an offset")
    fraction = (match["fraction"] or "")[:6]  # Python keeps microseconds; finer digits are dropped
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    iso = f"{match['date']}T{match['time']}{'.' + fraction.ljust(6, '0') if fraction else ''}"
    try:
        return dt.datetime.fromisoformat(iso + offset).astimezone(dt.UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 lies beyond datetime.max in UTC
        raise ValueError("is out of range") from None


def format_timestamp(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a Z, microseconds only when present."""
    utc = value.astimezone(dt.UTC)
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return utc.strftime(pattern)


def check_text(value: str) -> str | None:
    """Why `value` cannot be stored as PostgreSQL text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


def _check_json_value(value: Any) -> str | None:
    """Why a property value cannot be stored as jsonb, or None when it can."""
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if value.adjusted() > MAX_ADJUSTED_EXPONENT or (
            isinstance(exponent, int) and exponent < MIN_EXPONENT
        ):
            return "holds a number out of range"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = check_text(key) or _check_json_value(item)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        return next((p for p in map(_check_json_value, value) if p), None)
    return None


def _required_text(raw: dict[str, Any], name: str, max_length: int | None = None) -> str:
    value = raw.get(name)
    if name not in raw:
        raise ValueError("is required")
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value:
        raise ValueError("must not be empty")
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters, got {len(value)}")
    problem = check_text(value)
    if problem:
        raise ValueError(problem)
    return value


def _timestamp(raw: dict[str, Any], now: dt.datetime) -> dt.datetime:
    text = _required_text(raw, "timestamp")
    value = parse_rfc3339(text)
    if value > now + FUTURE_LIMIT:
        raise ValueError(f"{text} is more than 24 hours in the future")
    if value < now - BACKDATING_LIMIT:
        raise ValueError(f"{text} is more than 34 days in the past")
    return value


def _properties(raw: dict[str, Any]) -> dict[str, Any]:
    value = raw.get("properties", {})
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    problem = _check_json_value(value)
    if problem:
        raise ValueError(problem)
    return value


_FIELDS = (
    ("transaction_id", lambda raw, now: _required_text(raw, "transaction_id", MAX_TRANSACTION_ID)),
    ("customer_id", lambda raw, now: _required_text(raw, "customer_id")),
    ("event_type", lambda raw, now: _required_text(raw, "event_type")),
    ("timestamp", _timestamp),
    ("properties", lambda raw, now: _properties(raw)),
)


def _event(raw: Any, index: int, now: dt.datetime, errors: list[str]) -> Event | None:
    if not isinstance(raw, dict):
        errors.append(f"events[{index}]: must be an object")
        return None
    values: dict[str, Any] = {}
    for name, check in _FIELDS:
        try:
            values[name] = check(raw, now)
        except ValueError as error:
            errors.append(f"events[{index}].{name}: {error}")
    return Event(**values) if len(values) == len(_FIELDS) else None


def validate_batch(body: Any, now: dt.datetime) -> list[Event]:
    """The events of an ingest body, or ValidationError naming every bad index and field."""
    if not isinstance(body, list):
        raise ValidationError("body must be a JSON array of events")
    if not body:
        raise ValidationError("body must contain at least 1 event")
    if len(body) > MAX_BATCH:
        raise ValidationError(f"body must contain at most {MAX_BATCH} events, got {len(body)}")
    errors: list[str] = []
    events = [_event(raw, index, now, errors) for index, raw in enumerate(body)]
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = (
            f" (and {len(errors) - MAX_ERRORS_SHOWN} more)"
            if len(errors) > MAX_ERRORS_SHOWN
            else ""
        )
        raise ValidationError(f"invalid event(s): {shown}{more}")
    return [event for event in events if event is not None]
