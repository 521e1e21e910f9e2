"""Bulk loading of raw metrics (JSON lines) with COPY, quarantining every line it cannot accept.

A line loads only if it can be stored exactly as given; anything else goes to
`quarantined_metrics` with its line number, the line and a reason, and the load goes on. The rules
(docs/architecture.md, "Raw metrics"), checked in Python so that no line can make PostgreSQL
refuse a whole chunk:

- the file is read as bytes and decoded line by line (invalid UTF-8 costs one line); a line over
  MAX_LINE_BYTES is refused unread; a UTF-8 byte order mark opens the first line at most;
- a line is one JSON object, in JSON's grammar only: no NaN/Infinity, no duplicate keys, nesting
  at most MAX_DEPTH deep, no NUL character or lone surrogate in any string (`\\u0000` included:
  jsonb refuses both), and every number one PostgreSQL's numeric can hold;
- `event_id`, `customer_id`, `metric` and required property values are identifiers: non-empty,
  at most MAX_IDENTIFIER characters (they are indexed);
- `occurred_at` is ISO 8601 with an offset, no finer than a microsecond (PostgreSQL's precision),
  not before the first partition and at most FUTURE_TOLERANCE after the time of loading (the
  pipeline clock; the billing API rejects events dated further ahead);
- `value` (default 1) and decimal properties are JSON numbers or strings in JSON's number grammar
  with at most MAX_SIGNIFICANT_DIGITS significant digits, non-negative unless the raw metric is
  declared `signed` (usage_billing.collectors);
- an `event_id` already stored (or earlier in the file) with other content is a conflict: the
  stored row stays and the newcomer is quarantined; with the same content it is a duplicate, a
  no-op. Content compares semantically: instants, numbers and jsonb values, not their spelling.

Counts: every non-blank line read is exactly one of loaded, duplicate or quarantined; conflicts are
quarantined lines and are counted in both `quarantined` and `conflicting`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import sqlalchemy as sa

from usage_billing import periods, sql
from usage_billing.collectors import RawMetric, raw_metrics

CHUNK_LINES = 20_000
CHUNK_BYTES = 32 * 2**20
MAX_LINE_BYTES = 2**20
QUARANTINED_HEAD_BYTES = 64 * 2**10  # what is kept of a line over MAX_LINE_BYTES
MAX_IDENTIFIER = 256
MAX_DEPTH = 100
MAX_SIGNIFICANT_DIGITS = 1000  # numeric's largest declared precision; keeps index rows small
FUTURE_TOLERANCE = dt.timedelta(hours=24)
# PostgreSQL numeric: digits before the point, after it, and the exponent it parses.
_NUMERIC_INTEGER_DIGITS = 131_072
_NUMERIC_SCALE = 16_383
_NUMERIC_EXPONENT = 2**30 - 1
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_BLANK = " \t\r\n"
# Strings PostgreSQL text and jsonb cannot hold: NUL and lone surrogates (raw or \u-escaped).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SUB_MICROSECOND = re.compile(r"[.,][0-9]{6}0*[1-9]")

# Keep a rejected line with its reason; the same line of the same source is kept once. Hashes,
# because a line (or a path) can exceed what a btree index entry holds.
_QUARANTINE = sa.text("""
INSERT INTO quarantined_metrics (source, line_number, line, line_truncated, line_escaped, reason)
VALUES (:source, :line_number, :line, :line_truncated, :line_escaped, :reason)
ON CONFLICT (md5(source), line_number, md5(line))
DO UPDATE SET reason = EXCLUDED.reason, resolved_at = NULL
""")
_QUARANTINE_PENDING = sa.text("""
SELECT id, line, reason, line_truncated OR line_escaped AS unreadable
FROM quarantined_metrics
WHERE resolved_at IS NULL AND id > :after
ORDER BY id
LIMIT :limit
""")
_QUARANTINE_REASON = sa.text("UPDATE quarantined_metrics SET reason = :reason WHERE id = :id")
_QUARANTINE_RESOLVE = sa.text(
    "UPDATE quarantined_metrics SET resolved_at = now() WHERE id = ANY(:ids)"
)


class InvalidLineError(ValueError):
    """A line that cannot become a raw metric; the message is the quarantine reason."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class RawRow(NamedTuple):
    """A valid line, its fields in the staging table's column order (COPY writes it as is)."""

    line_number: int
    event_id: str
    customer_id: str
    metric: str
    occurred_at: dt.datetime
    value: Decimal
    document: str  # the line itself: PostgreSQL takes `properties` from it, so numbers stay exact


@dataclass(frozen=True)
class Rejected:
    """A line for the quarantine: `line` is storable text (escaped or truncated if it had to be)."""

    line_number: int
    line: str
    kind: str
    reason: str
    truncated: bool = False
    escaped: bool = False


@dataclass
class LoadResult:
    loaded: int = 0
    duplicate: int = 0
    quarantined: int = 0  # conflicts included
    conflicting: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def read(self) -> int:
        return self.loaded + self.duplicate + self.quarantined

    def count(self, rejected: Iterable[Rejected]) -> None:
        for line in rejected:
            self.quarantined += 1
            self.conflicting += line.kind == "conflict"
            self.reasons[line.kind] = self.reasons.get(line.kind, 0) + 1


# --- one line ------------------------------------------------------------------------------------


def _shown(value: Any, limit: int = 60) -> str:
    """A value for a reason: repr (which escapes NUL and surrogates), clipped."""
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _json_number(text: str) -> Decimal:
    """A number in JSON's grammar as an exact Decimal, if PostgreSQL's numeric can hold it."""
    if len(text) <= MAX_SIGNIFICANT_DIGITS and "e" not in text and "E" not in text:
        return Decimal(text)  # the common case: too few digits to exceed any limit
    exponent = text.lower().partition("e")[2]
    if len(exponent.lstrip("+-")) > 10 or abs(int(exponent or 0)) >= _NUMERIC_EXPONENT:
        raise InvalidLineError("bad_number", f"exponent of {_shown(text)} is out of range")
    number = Decimal(text)
    _, digits, exp = number.as_tuple()
    assert isinstance(exp, int)  # finite by the grammar
    if -exp > _NUMERIC_SCALE:
        raise InvalidLineError("bad_number", f"{_shown(text)} has more than 16383 decimals")
    if any(digits) and len(digits) + exp > _NUMERIC_INTEGER_DIGITS:
        raise InvalidLineError("bad_number", f"{_shown(text)} has more than 131072 integer digits")
    return number


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise InvalidLineError("duplicate_key", f"key {_shown(repeated)} appears twice")
    return document


def _reject_constant(name: str) -> None:
    raise InvalidLineError("invalid_json", f"{name} is not a JSON number")


# One decoder: JSON's grammar only, numbers exact and within PostgreSQL's numeric, no repeated key.
_DECODER = json.JSONDecoder(
    parse_float=_json_number,
    parse_int=_json_number,
    parse_constant=_reject_constant,
    object_pairs_hook=_json_object,
)


def _check_strings_and_depth(document: dict[str, Any]) -> None:
    """Walk the document (only for lines that may need it): no string PostgreSQL cannot hold,
    no nesting deeper than MAX_DEPTH."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidLineError("too_deep", f"nested more than {MAX_DEPTH} levels")
        children = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in children:
            for text in (key, child):
                if isinstance(text, str) and _UNSTORABLE.search(text):
                    raise InvalidLineError(
                        "bad_string", f"{_shown(text)} holds a NUL or a lone surrogate"
                    )
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))


def _decode(line: str) -> dict[str, Any]:
    try:
        document = _DECODER.decode(line)
    except InvalidLineError:
        raise
    except RecursionError:
        raise InvalidLineError("too_deep", f"nested more than {MAX_DEPTH} levels") from None
    except ValueError as error:  # JSONDecodeError included
        raise InvalidLineError("invalid_json", f"not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidLineError("invalid_json", "not a JSON object")
    # The walk is rare: only an escape, a NUL, a non-ASCII character or many brackets need it.
    maybe_unstorable = "\\u" in line or "\x00" in line or not line.isascii()
    if maybe_unstorable or line.count("{") + line.count("[") > MAX_DEPTH:
        _check_strings_and_depth(document)
    return document


def _identifier(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if value is None:
        raise InvalidLineError("missing_field", f"missing field '{name}'")
    if not isinstance(value, str) or not value.strip():
        raise InvalidLineError("bad_field", f"field '{name}' must be a non-empty string")
    if len(value) > MAX_IDENTIFIER:
        raise InvalidLineError(
            "bad_field", f"field '{name}' is longer than {MAX_IDENTIFIER} characters"
        )
    return value


@functools.cache
def _first_instant(first_month: str) -> dt.datetime:
    return periods.month_bounds(first_month)[0]


def _timestamp(document: dict[str, Any], now: dt.datetime) -> dt.datetime:
    text = _identifier(document, "occurred_at")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidLineError(
            "bad_timestamp", f"occurred_at={_shown(text)} is not ISO 8601"
        ) from None
    if value.tzinfo is None:
        raise InvalidLineError("bad_timestamp", f"occurred_at={_shown(text)} has no UTC offset")
    if _SUB_MICROSECOND.search(text):
        raise InvalidLineError(
            "bad_timestamp", f"occurred_at={_shown(text)} is finer than a microsecond"
        )
    try:
        value = value.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidLineError(
            "bad_timestamp", f"occurred_at={_shown(text)} is out of range"
        ) from None
    if value < _first_instant(periods.FIRST_MONTH):
        raise InvalidLineError(
            "before_first_partition",
            f"occurred_at={_shown(text)} is before the first partition, {periods.FIRST_MONTH}",
        )
    if value > now + FUTURE_TOLERANCE:
        raise InvalidLineError(
            "in_the_future",
            f"occurred_at={_shown(text)} is more than 24 h after the time of loading, "
            f"{now.isoformat()}",
        )
    return value


def _quantity(raw: Any, name: str, spec: RawMetric) -> Decimal:
    """A JSON number (already a Decimal) or a decimal string in JSON's number grammar."""
    if isinstance(raw, str) and _JSON_NUMBER.fullmatch(raw):
        try:
            raw = _json_number(raw)
        except InvalidLineError as error:
            raise InvalidLineError("bad_value", f"{name}: {error.message}") from None
    if not isinstance(raw, Decimal):
        raise InvalidLineError("bad_value", f"{name} {_shown(raw)} is not a number")
    digits = raw.as_tuple().digits
    if len(digits) > MAX_SIGNIFICANT_DIGITS and len(_significant(digits)) > MAX_SIGNIFICANT_DIGITS:
        raise InvalidLineError(
            "bad_value", f"{name} has more than {MAX_SIGNIFICANT_DIGITS} significant digits"
        )
    if raw < 0 and not spec.signed:
        raise InvalidLineError(
            "negative_value",
            f"{name} {_shown(raw)} is negative and raw metric '{spec.name}' is not signed",
        )
    return raw


def _significant(digits: tuple[int, ...]) -> str:
    return "".join(map(str, digits)).strip("0")


def _scalar_text(value: Any) -> str | None:
    """What `properties ->> name` gives for a JSON scalar; None for an object or array."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return value if isinstance(value, str) else None


def _check_properties(document: dict[str, Any], spec: RawMetric) -> None:
    properties = document.get("properties", {})
    if not isinstance(properties, dict):
        raise InvalidLineError("bad_field", "field 'properties' must be an object")
    missing = [name for name in spec.required_properties if properties.get(name) is None]
    if missing:
        raise InvalidLineError(
            "missing_property", f"metric '{spec.name}' needs properties {missing}"
        )
    for name in spec.required_properties:
        value = properties[name]
        text = value if type(value) is str else _scalar_text(value)
        if not isinstance(text, str) or len(text) > MAX_IDENTIFIER:
            raise InvalidLineError(
                "bad_property",
                f"property '{name}' must be a string, number or boolean of at most "
                f"{MAX_IDENTIFIER} characters (collectors index it)",
            )
    for name in spec.decimal_properties:
        if properties.get(name) is not None:
            _quantity(properties[name], f"property '{name}'", spec)


def parse_line(
    line: str, known: dict[str, RawMetric], now: dt.datetime | None = None, line_number: int = 0
) -> RawRow:
    """Validate one JSON line; raise InvalidLineError with the reason otherwise."""
    document = _decode(line)
    metric = _identifier(document, "metric")
    spec = known.get(metric)
    if spec is None:
        raise InvalidLineError("unknown_metric", f"no collector reads metric {_shown(metric)}")
    row = RawRow(
        line_number=line_number,
        event_id=_identifier(document, "event_id"),
        customer_id=_identifier(document, "customer_id"),
        metric=metric,
        occurred_at=_timestamp(document, now or periods.now()),
        value=_quantity(document.get("value", Decimal(1)), "value", spec),
        document=line,
    )
    _check_properties(document, spec)
    return row


# --- reading -------------------------------------------------------------------------------------


def _storable(line: str | bytes) -> tuple[str, bool]:
    """The line as text PostgreSQL can hold, and whether it had to be escaped to get there
    (invalid UTF-8, NUL, lone surrogates become backslash escapes)."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
            return text, True
    if _UNSTORABLE.search(line):
        text = line.encode("utf-8", "backslashreplace").decode("utf-8")
        return text.replace("\x00", "\\x00"), True
    return line, False


def _rejected(number: int, line: str | bytes, error: InvalidLineError, **flags: bool) -> Rejected:
    text, escaped = _storable(line)
    return Rejected(number, text, error.kind, str(error), escaped=escaped, **flags)


def _read_lines(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """The stream's lines as bytes, and whether each was too long (then only its head is kept:
    memory stays bounded whatever the file holds)."""
    while head := stream.readline(MAX_LINE_BYTES + 1):
        too_long = len(head) > MAX_LINE_BYTES and not head.endswith(b"\n")
        while too_long and (rest := stream.readline(MAX_LINE_BYTES)) and rest[-1:] != b"\n":
            pass  # skip to the end of the line
        yield (head[:QUARANTINED_HEAD_BYTES] if too_long else head), too_long


def _text_line(number: int, line: str | bytes, too_long: bool = False) -> str | Rejected | None:
    """A line as text ready to parse, a Rejected when it cannot even be read, None when blank."""
    if isinstance(line, str) and len(line) > MAX_LINE_BYTES // 4:
        encoded = line.encode("utf-8", "surrogatepass")
        too_long = len(encoded) > MAX_LINE_BYTES
        line = encoded[:QUARANTINED_HEAD_BYTES] if too_long else line
    if too_long:
        error = InvalidLineError("line_too_long", f"longer than {MAX_LINE_BYTES} bytes")
        return _rejected(number, line, error, truncated=True)
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as failure:
            return _rejected(number, line, InvalidLineError("invalid_utf8", str(failure)))
    if number == 1:
        line = line.removeprefix("\ufeff")  # a byte order mark opens the file
    line = line.rstrip("\r\n")
    return line if line.strip(_BLANK) else None


def _parse(
    numbered: Iterable[tuple[int, str]], known: dict[str, RawMetric], now: dt.datetime
) -> tuple[list[RawRow], list[Rejected]]:
    rows: list[RawRow] = []
    rejected: list[Rejected] = []
    for number, line in numbered:
        try:
            rows.append(parse_line(line, known, now, number))
        except InvalidLineError as error:
            rejected.append(_rejected(number, line, error))
    return rows, rejected


# --- storing -------------------------------------------------------------------------------------


def _store(conn: sa.Connection, rows: list[RawRow]) -> tuple[int, list[Rejected]]:
    """COPY rows into the store through the staging table: how many were new, and the lines
    whose event_id is stored with other content (conflicts). A few statements per chunk, none
    per line."""
    if not rows:
        return 0, []
    conn.exec_driver_sql(sql.read("raw_metrics_staging.sql"))
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY raw_metrics_staging ({', '.join(RawRow._fields)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    inserted = set(sql.execute(conn, "raw_metrics_insert_staged.sql").scalars())
    # Each inserted row is the first line of its event_id; every other line may be a conflict.
    first: dict[str, int] = {}
    for row in rows:
        first.setdefault(row.event_id, row.line_number)
    suspects = {
        row.line_number: row.document
        for row in rows
        if row.event_id not in inserted or first[row.event_id] != row.line_number
    }
    if not suspects:
        return len(inserted), []
    found = sql.execute(conn, "raw_metrics_staged_conflicts.sql", line_numbers=list(suspects))
    conflicts = [
        Rejected(
            c.line_number,
            suspects[c.line_number],
            "conflict",
            f"conflict: event_id {_shown(c.event_id)} is stored with another "
            f"{', '.join(c.differs)}; the stored row stays",
        )
        for c in found
    ]
    return len(inserted), conflicts


def _quarantine(conn: sa.Connection, source: str, rejected: list[Rejected]) -> None:
    if rejected:
        conn.execute(
            _QUARANTINE,
            [
                {
                    "source": source,
                    "line_number": r.line_number,
                    "line": r.line,
                    "line_truncated": r.truncated,
                    "line_escaped": r.escaped,
                    "reason": r.reason,
                }
                for r in sorted(rejected, key=lambda r: r.line_number)
            ],
        )


def _chunks(
    lines: Iterable[tuple[int, str | bytes, bool]],
) -> Iterator[list[tuple[int, str | bytes, bool]]]:
    """Lines as read, in chunks of at most CHUNK_LINES lines or CHUNK_BYTES."""
    chunk: list[tuple[int, str | bytes, bool]] = []
    size = 0
    for entry in lines:
        chunk.append(entry)
        size += len(entry[1])
        if len(chunk) >= CHUNK_LINES or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _read_and_parse(
    chunk: list[tuple[int, str | bytes, bool]], known: dict[str, RawMetric], now: dt.datetime
) -> tuple[list[RawRow], list[Rejected]]:
    readable: list[tuple[int, str]] = []
    unreadable: list[Rejected] = []
    for number, raw, too_long in chunk:
        line = _text_line(number, raw, too_long)
        if isinstance(line, Rejected):
            unreadable.append(line)
        elif line is not None:
            readable.append((number, line))
    rows, rejected = _parse(readable, known, now)
    return rows, unreadable + rejected


def _load(
    engine: sa.Engine, lines: Iterable[tuple[int, str | bytes, bool]], source: str
) -> LoadResult:
    """Each chunk commits its rows and its quarantine together. The next chunk is parsed while
    PostgreSQL stores this one (psycopg releases the GIL while it waits)."""
    known, now = raw_metrics(), periods.now()
    result = LoadResult()

    def commit(parsed: Future[tuple[list[RawRow], list[Rejected]]]) -> None:
        rows, rejected = parsed.result()
        with engine.begin() as conn:
            inserted, conflicts = _store(conn, rows)
            rejected += conflicts
            _quarantine(conn, source, rejected)
        result.loaded += inserted
        result.duplicate += len(rows) - inserted - len(conflicts)
        result.count(rejected)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="loader-parse") as parser:
        previous = None
        for chunk in _chunks(lines):
            parsed = parser.submit(_read_and_parse, chunk, known, now)
            if previous:
                commit(previous)
            previous = parsed
        if previous:
            commit(previous)
    return result


def load_lines(engine: sa.Engine, lines: Iterable[str], source: str) -> LoadResult:
    """Load JSON lines (numbered from 1, blank ones skipped); never raises for a bad line."""
    return _load(engine, ((n, line, False) for n, line in enumerate(lines, start=1)), source)


def load_file(engine: sa.Engine, path: Path) -> LoadResult:
    """Load a JSON-lines file, read as bytes and decoded line by line; raises OSError only if the
    file cannot be opened or read."""
    source, _ = _storable(os.fsencode(path.resolve()))
    with path.open("rb") as stream:
        lines = ((n, raw, too_long) for n, (raw, too_long) in enumerate(_read_lines(stream), 1))
        return _load(engine, lines, source)


def retry_quarantine(engine: sa.Engine) -> LoadResult:
    """Re-validate unresolved quarantined lines with today's collectors and clock (a metric that
    gained a collector, a line whose time has come). A line kept truncated or escaped can never
    load and stays as it is. Counts describe the retried lines: quarantined = still quarantined."""
    known, now = raw_metrics(), periods.now()
    result = LoadResult()
    after = 0
    while True:
        with engine.begin() as conn:
            pending = conn.execute(
                _QUARANTINE_PENDING, {"after": after, "limit": CHUNK_LINES}
            ).all()
            if not pending:
                return result
            after = pending[-1].id
            readable = [(entry.id, entry.line) for entry in pending if not entry.unreadable]
            rows, rejected = _parse(readable, known, now)
            inserted, conflicts = _store(conn, rows)
            rejected += conflicts
            if rejected:
                updates = [{"id": r.line_number, "reason": r.reason} for r in rejected]
                conn.execute(_QUARANTINE_REASON, updates)
            kept = {r.line_number for r in conflicts}
            resolved = [row.line_number for row in rows if row.line_number not in kept]
            if resolved:
                conn.execute(_QUARANTINE_RESOLVE, {"ids": resolved})
        result.loaded += inserted
        result.duplicate += len(rows) - inserted - len(conflicts)
        result.count(rejected)
        result.count(_kept(entry) for entry in pending if entry.unreadable)


def _kept(entry: sa.Row) -> Rejected:
    """A quarantined line that cannot be read again, counted under the kind of its reason."""
    return Rejected(entry.id, entry.line, entry.reason.partition(":")[0], entry.reason)
