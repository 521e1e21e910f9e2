"""Bulk loading of raw metrics (JSON lines) with COPY, quarantining every line it cannot accept."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from usage_billing import sql
from usage_billing.collectors import RawMetric, raw_metrics

CHUNK_LINES = 20_000
# Keep a rejected line with its reason; the same line of the same file is kept once.
_QUARANTINE = sa.text("""
INSERT INTO quarantined_metrics (source, line_number, line, reason)
VALUES (:source, :line_number, :line, :reason)
ON CONFLICT (source, line_number, line) DO UPDATE SET reason = EXCLUDED.reason
""")
_QUARANTINE_PENDING = sa.text(
    "SELECT id, source, line_number, line FROM quarantined_metrics "
    "WHERE resolved_at IS NULL ORDER BY id"
)
_QUARANTINE_REASON = sa.text("UPDATE quarantined_metrics SET reason = :reason WHERE id = :id")
_QUARANTINE_RESOLVE = sa.text(
    "UPDATE quarantined_metrics SET resolved_at = now() WHERE id = ANY(:ids)"
)
STAGING_COLUMNS = ("event_id", "customer_id", "metric", "occurred_at", "value", "document")


class InvalidLineError(ValueError):
    """A line that cannot become a raw metric; the message is the quarantine reason."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass(frozen=True)
class RawRow:
    event_id: str
    customer_id: str
    metric: str
    occurred_at: dt.datetime
    value: Decimal
    document: str  # the line itself: PostgreSQL takes `properties` from it, so numbers stay exact


@dataclass
class LoadResult:
    loaded: int = 0
    duplicate: int = 0
    quarantined: int = 0
    conflicting: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def read(self) -> int:
        return self.loaded + self.duplicate + self.quarantined


def _text(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if value is None:
        raise InvalidLineError("missing_field", f"missing field '{name}'")
    if not isinstance(value, str) or not value.strip():
        raise InvalidLineError("bad_field", f"field '{name}' must be a non-empty string")
    return value


def _timestamp(document: dict[str, Any]) -> dt.datetime:
    text = _text(document, "occurred_at")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidLineError("bad_timestamp", f"occurred_at={text!r} is not ISO 8601") from None
    if value.tzinfo is None:
        raise InvalidLineError("bad_timestamp", f"occurred_at={text!r} has no UTC offset")
    return value.astimezone(dt.UTC)


def _value(document: dict[str, Any]) -> Decimal:
    raw = document.get("value", 1)
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        raise InvalidLineError("bad_value", f"value {raw!r} is not a number")
    try:
        value = Decimal(raw) if not isinstance(raw, Decimal) else raw
    except InvalidOperation:
        raise InvalidLineError("bad_value", f"value {raw!r} is not a number") from None
    if not value.is_finite():
        raise InvalidLineError("bad_value", f"value {raw!r} is not finite")
    return value


def _check_properties(document: dict[str, Any], spec: RawMetric) -> None:
    properties = document.get("properties", {})
    if not isinstance(properties, dict):
        raise InvalidLineError("bad_field", "field 'properties' must be an object")
    missing = [name for name in spec.required_properties if properties.get(name) is None]
    if missing:
        raise InvalidLineError(
            "missing_property", f"metric '{spec.name}' needs properties {missing}"
        )


def parse_line(line: str, known: dict[str, RawMetric]) -> RawRow:
    """Validate one JSON line; raise InvalidLineError with the reason otherwise."""
    try:
        document = json.loads(line, parse_float=Decimal, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as error:
        raise InvalidLineError("invalid_json", f"not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidLineError("invalid_json", "not a JSON object")
    metric = _text(document, "metric")
    spec = known.get(metric)
    if spec is None:
        raise InvalidLineError("unknown_metric", f"no collector reads metric '{metric}'")
    row = RawRow(
        event_id=_text(document, "event_id"),
        customer_id=_text(document, "customer_id"),
        metric=metric,
        occurred_at=_timestamp(document),
        value=_value(document),
        document=line,
    )
    _check_properties(document, spec)
    return row


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def copy_rows(conn: sa.Connection, rows: Iterable[RawRow]) -> int:
    """COPY rows into the store through a staging table; returns how many were new."""
    conn.exec_driver_sql(sql.read("raw_metrics_staging.sql"))
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY raw_metrics_staging ({', '.join(STAGING_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                (
                    row.event_id,
                    row.customer_id,
                    row.metric,
                    row.occurred_at,
                    row.value,
                    row.document,
                )
            )
    return sql.execute(conn, "raw_metrics_insert_staged.sql").rowcount


def _quarantine(conn: sa.Connection, source: str, rejected: list[tuple[int, str, str]]) -> None:
    if rejected:
        conn.execute(
            _QUARANTINE,
            [
                {"source": source, "line_number": n, "line": line, "reason": r}
                for n, line, r in rejected
            ],
        )


def load_lines(engine: sa.Engine, lines: Iterable[str], source: str) -> LoadResult:
    """Load JSON lines in chunks; each chunk commits its rows and its quarantine together."""
    known = raw_metrics()
    result = LoadResult()
    numbered = ((n, line) for n, line in enumerate(lines, start=1) if line.strip())
    while chunk := list(itertools.islice(numbered, CHUNK_LINES)):
        valid: list[RawRow] = []
        rejected: list[tuple[int, str, str]] = []
        for number, line in chunk:
            try:
                valid.append(parse_line(line, known))
            except InvalidLineError as error:
                rejected.append((number, line.rstrip("\n"), str(error)))
                result.reasons[error.kind] = result.reasons.get(error.kind, 0) + 1
        with engine.begin() as conn:
            inserted = copy_rows(conn, valid) if valid else 0
            _quarantine(conn, source, rejected)
        result.loaded += inserted
        result.duplicate += len(valid) - inserted
        result.quarantined += len(rejected)
    return result


def load_file(engine: sa.Engine, path: Path) -> LoadResult:
    """Load a JSON-lines file; raises OSError / UnicodeDecodeError if it cannot be read at all."""
    with path.open(encoding="utf-8") as lines:
        return load_lines(engine, lines, source=str(path.resolve()))


def retry_quarantine(engine: sa.Engine) -> LoadResult:
    """Re-validate quarantined lines (e.g. after a collector for their metric was added)."""
    known = raw_metrics()
    result = LoadResult()
    with engine.begin() as conn:
        pending = conn.execute(_QUARANTINE_PENDING).all()
        valid: list[RawRow] = []
        resolved: list[int] = []
        for entry in pending:
            try:
                valid.append(parse_line(entry.line, known))
                resolved.append(entry.id)
            except InvalidLineError as error:
                result.quarantined += 1
                conn.execute(_QUARANTINE_REASON, {"id": entry.id, "reason": str(error)})
        inserted = copy_rows(conn, valid) if valid else 0
        if resolved:
            conn.execute(_QUARANTINE_RESOLVE, {"ids": resolved})
    result.loaded = inserted
    result.duplicate = len(valid) - inserted
    return result
