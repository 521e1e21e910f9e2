"""The loader against input an adversary would write: a hypothesis fuzz over arbitrary bytes,
arbitrary JSON and good lines poisoned one field at a time, and a torture file of named nasty
lines. The invariant: every good line is stored with exactly its content, every other non-blank
line is quarantined with its line number, and nothing escapes `load` as an exception."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.pipeline import NOW
from usage_billing import loader
from usage_billing.collectors import raw_metrics

pytestmark = pytest.mark.adversarial

KNOWN = raw_metrics()
FIELDS = ("event_id", "customer_id", "metric", "occurred_at", "value", "properties")
LATEST = NOW + loader.FUTURE_TOLERANCE
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


class Num(str):
    """A JSON number, written as given."""


@dataclass(frozen=True)
class Pairs:
    """A JSON object written from pairs, which may repeat a key."""

    pairs: tuple[tuple[str, Any], ...]


def dump(value: Any, ascii_only: bool = True) -> str:
    """JSON text with numbers written as given (Num) and objects possibly repeating keys."""
    if isinstance(value, Num):
        return str(value)
    if isinstance(value, dict):
        value = Pairs(tuple(value.items()))
    if isinstance(value, Pairs):
        items = (f"{dump(k, ascii_only)}: {dump(v, ascii_only)}" for k, v in value.pairs)
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def canon(value: Any) -> Any:
    """A comparable form: numbers by value, booleans apart from numbers, keys in order."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, Num | Decimal):
        return ("num", Decimal(value))
    if value is None or isinstance(value, str):
        return ("scalar", value)
    if isinstance(value, list):
        return ("list", tuple(canon(v) for v in value))
    return (
        "object",
        tuple(sorted(((k, canon(v)) for k, v in value.items()), key=lambda kv: kv[0])),
    )


def stored(engine: sa.Engine) -> dict[str, tuple]:
    """raw_metrics by event_id, properties read exactly (psycopg would read numbers as floats)."""
    query = sa.text(
        "SELECT event_id, customer_id, metric, occurred_at, value, properties::text AS p"
        " FROM raw_metrics"
    )
    with engine.connect() as conn:
        return {
            r.event_id: (
                r.customer_id,
                r.metric,
                r.occurred_at,
                r.value,
                canon(json.loads(r.p, parse_float=Decimal, parse_int=Decimal)),
            )
            for r in conn.execute(query)
        }


def quarantined(engine: sa.Engine) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT line_number, reason FROM quarantined_metrics"))
        return {r.line_number: r.reason.partition(":")[0] for r in rows}


def reset(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE raw_metrics, quarantined_metrics")


# --- good lines ----------------------------------------------------------------------------------

STORABLE = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXT = st.text(STORABLE, max_size=10)
IDENT = st.one_of(
    st.text(STORABLE, min_size=1, max_size=10),
    st.text(STORABLE, min_size=loader.MAX_IDENTIFIER, max_size=loader.MAX_IDENTIFIER),
).filter(str.strip)


@st.composite
def number_texts(draw: st.DrawFn, negative: bool | None = False) -> str:
    """JSON number text PostgreSQL's numeric holds (negative: False never, None maybe, True
    always and non-zero)."""
    digits = draw(st.integers(1 if negative else 0, 10**30))
    sign = "-" if negative or (negative is None and draw(st.booleans())) else ""
    form = draw(st.sampled_from(["integer", "fraction", "exponent"]))
    if form == "integer":
        return f"{sign}{digits}"
    if form == "fraction":
        return f"{sign}{digits}.{draw(st.text('0123456789', min_size=1, max_size=30))}"
    exponent = draw(st.integers(-16_383, 131_072 - len(str(digits))))
    return f"{sign}{digits}{draw(st.sampled_from('eE'))}{exponent}"


def instants(low: dt.datetime, high: dt.datetime) -> st.SearchStrategy[dt.datetime]:
    naive = st.datetimes(min_value=low.replace(tzinfo=None), max_value=high.replace(tzinfo=None))
    return naive.map(lambda moment: moment.replace(tzinfo=dt.UTC))


OFFSETS = st.integers(-(24 * 3600 - 1), 24 * 3600 - 1).map(
    lambda seconds: dt.timezone(dt.timedelta(seconds=seconds))
)
GOOD_INSTANTS = instants(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), LATEST)


def written(moment: dt.datetime, offset: dt.timezone) -> str:
    text = moment.astimezone(offset).isoformat()
    utc_as_z = text.endswith("+00:00") and moment.microsecond % 2
    return text.removesuffix("+00:00") + "Z" if utc_as_z else text


SCALARS = st.one_of(st.none(), st.booleans(), TEXT, number_texts(None).map(Num))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
REQUIRED_VALUES = st.one_of(IDENT, st.booleans(), st.integers(0, 10**12).map(lambda n: Num(str(n))))
DECIMALS = st.one_of(number_texts(), number_texts().map(Num))


@dataclass
class Good:
    document: dict[str, Any]
    instant: dt.datetime

    def line(self, event_id: str, ascii_only: bool = True) -> str:
        return dump({"event_id": event_id, **self.document}, ascii_only)

    def expected(self) -> tuple:
        document = self.document
        return (
            document["customer_id"],
            document["metric"],
            self.instant,
            Decimal(document.get("value", 1)),
            canon(document.get("properties", {})),
        )


@st.composite
def goods(draw: st.DrawFn) -> Good:
    metric = draw(st.sampled_from(sorted(KNOWN)))
    spec = KNOWN[metric]
    properties = draw(st.dictionaries(TEXT, VALUES, max_size=4))
    for name in spec.required_properties:
        properties[name] = draw(REQUIRED_VALUES)
    for name in spec.decimal_properties:
        properties[name] = draw(DECIMALS | st.none())
    instant = draw(GOOD_INSTANTS)
    document: dict[str, Any] = {
        "customer_id": draw(IDENT),
        "metric": metric,
        "occurred_at": written(instant, draw(OFFSETS)),
    }
    if draw(st.booleans()):
        document["value"] = draw(DECIMALS | st.sampled_from(["-0", Num("-0.0e5")]))
    if properties or spec.required_properties or draw(st.booleans()):
        document["properties"] = properties
    extra = draw(st.dictionaries(TEXT.filter(lambda key: key not in FIELDS), VALUES, max_size=2))
    order = draw(st.permutations([*document, *extra]))
    merged = {**document, **extra}
    return Good({key: merged[key] for key in order}, instant)


# --- bad lines: each is bad by the contract, whatever the loader does ----------------------------

UNSTORABLE_TEXT = st.tuples(
    TEXT, st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]), TEXT
).map("".join)
NOT_TEXT = st.one_of(
    st.integers().map(lambda n: Num(str(n))),
    st.booleans(),
    st.lists(SCALARS, max_size=2),
    st.dictionaries(TEXT, SCALARS, max_size=2),
)
BAD_IDENTIFIERS = st.one_of(
    NOT_TEXT,
    st.text(" \t\n\u3000\u2028", max_size=3),
    st.text(STORABLE, min_size=loader.MAX_IDENTIFIER + 1, max_size=loader.MAX_IDENTIFIER + 40),
    UNSTORABLE_TEXT,
)


def _unparseable_time(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return True
    return False


@st.composite
def sub_microsecond(draw: st.DrawFn) -> str:
    moment = draw(GOOD_INSTANTS)
    extra = draw(st.text("0123456789", min_size=1, max_size=3).filter(lambda d: d.strip("0")))
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{extra}+00:00"


BAD_TIMES = st.one_of(
    st.builds(
        written,
        instants(
            dt.datetime(2, 1, 1, tzinfo=dt.UTC),
            dt.datetime(2025, 1, 1, tzinfo=dt.UTC) - dt.timedelta(microseconds=1),
        ),
        OFFSETS,
    ),
    st.builds(
        written,
        instants(LATEST + dt.timedelta(microseconds=1), dt.datetime(9999, 12, 30, tzinfo=dt.UTC)),
        OFFSETS,
    ),
    GOOD_INSTANTS.map(lambda moment: moment.replace(tzinfo=None).isoformat()),
    sub_microsecond(),
    st.text(max_size=30).filter(_unparseable_time),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-12:00"]),
    NOT_TEXT,
)
NOT_NUMBERS = st.one_of(
    number_texts(negative=True),
    number_texts(negative=True).map(Num),
    st.sampled_from(["1_000", "  7  ", "+1", ".5", "1.", "0x1F", "1e", "NaN", "\u0661", "01", ""]),
    st.text(max_size=8).filter(lambda text: not JSON_NUMBER.fullmatch(text)),
    st.sampled_from(["1e131072", "1e-16384", "0e-16384", "1" * 1001, "1e9999999999999"]),
    st.sampled_from(["1e131072", "1e-16384", "1" * 1001, "NaN", "Infinity", "-Infinity"]).map(Num),
    st.booleans(),
    st.lists(SCALARS, max_size=2),
    st.dictionaries(TEXT, SCALARS, max_size=2),
)
BAD_VALUES = NOT_NUMBERS | st.none()
POISON = st.one_of(
    UNSTORABLE_TEXT,
    st.sampled_from(["1e131072", "1e-16384", "0e-16384", "1e99999999999", "NaN", "-Infinity"]).map(
        Num
    ),
    st.integers(loader.MAX_DEPTH, 3 * loader.MAX_DEPTH).map(
        lambda depth: Num("[" * depth + "]" * depth)
    ),
)


def _with(document: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**document, key: value}


def _without(document: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != key}


@st.composite
def bad_documents(draw: st.DrawFn, good: Good) -> Any:
    """The good document with one thing wrong."""
    document = good.document
    spec = KNOWN[document["metric"]]
    properties = document.get("properties", {})
    field = draw(st.sampled_from(["event_id", "customer_id", "metric"]))
    choices: list[Callable[[], Any]] = [
        lambda: _without(document, draw(st.sampled_from(["customer_id", "metric", "occurred_at"]))),
        lambda: _with(document, field, draw(BAD_IDENTIFIERS)),
        lambda: _with(document, "metric", draw(IDENT.filter(lambda m: m not in KNOWN))),
        lambda: _with(document, "occurred_at", draw(BAD_TIMES)),
        lambda: _with(document, "value", draw(BAD_VALUES)),
        lambda: _with(document, "properties", draw(st.one_of(SCALARS, st.lists(SCALARS)))),
        lambda: _with(document, "properties", {**properties, draw(TEXT): draw(POISON)}),
        lambda: _with(document, "properties", {**properties, draw(UNSTORABLE_TEXT): 1}),
        lambda: _with(document, "properties", {**properties, "x": [[draw(POISON)]]}),
        lambda: Pairs((*document.items(), ("metric", document["metric"]))),  # a repeated key
        lambda: _with(document, "properties", Pairs((*properties.items(), ("k", 1), ("k", 1)))),
    ]
    if spec.required_properties:
        required = draw(st.sampled_from(spec.required_properties))
        wrong = draw(
            st.one_of(
                st.none(),
                st.lists(SCALARS, max_size=2),
                st.dictionaries(TEXT, SCALARS, max_size=2),
                st.text(STORABLE, min_size=loader.MAX_IDENTIFIER + 1, max_size=300),
                st.just(Num("1e300")),
            )
        )
        choices.append(lambda: _with(document, "properties", {**properties, required: wrong}))
        choices.append(lambda: _with(document, "properties", _without(properties, required)))
    if spec.decimal_properties:
        typed = draw(st.sampled_from(spec.decimal_properties))
        not_decimal = draw(NOT_NUMBERS)
        choices.append(lambda: _with(document, "properties", {**properties, typed: not_decimal}))
    return draw(st.sampled_from(choices))()


def _is_json_object(text: str | bytes) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


ANY_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.text(), st.floats(), st.integers()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
).filter(lambda value: not isinstance(value, dict))
ANY_BYTES = (
    st.binary(min_size=1, max_size=120)
    .map(lambda raw: raw.replace(b"\n", b""))
    .filter(lambda raw: raw.strip(b" \t\r") and not _is_json_object(raw.lstrip(b"\xef\xbb\xbf")))
)
ANY_TEXT = st.text(min_size=1, max_size=120).filter(
    lambda text: text.strip(" \t\r\n") and not _is_json_object(text.lstrip("\ufeff"))
)


@dataclass
class Case:
    lines: list[str | bytes]
    good: dict[str, tuple]  # event_id: expected stored content
    bad: set[int]  # line numbers
    duplicate: int
    conflicting: int


@st.composite
def cases(draw: st.DrawFn, as_bytes: bool) -> Case:
    good = draw(st.lists(goods(), max_size=6))
    ids = [f"{n}:{draw(st.text(STORABLE, max_size=8))}" for n in range(len(good))]
    ascii_only = st.booleans()
    good_lines: list[str | bytes] = [
        g.line(i, draw(ascii_only)) for g, i in zip(good, ids, strict=True)
    ]
    bad_lines: list[str | bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(
            st.sampled_from(["field", "field", "field", "truncated", "trailing", "json", "raw"])
        )
        base = draw(goods())
        line = base.line(f"bad:{len(bad_lines)}", draw(ascii_only))
        if kind == "field":
            bad = draw(bad_documents(base))
            bad = {"event_id": f"bad:{len(bad_lines)}", **bad} if isinstance(bad, dict) else bad
            bad_lines.append(dump(bad, draw(ascii_only)))
        elif kind == "truncated":
            bad_lines.append(line[: draw(st.integers(1, len(line) - 1))])
        elif kind == "trailing":
            bad_lines.append(line + draw(st.sampled_from([",", "}", " x", "{}", "]", "\x00"])))
        elif kind == "json":
            bad_lines.append(dump(draw(ANY_JSON), draw(ascii_only)))
        else:
            bad_lines.append(draw(ANY_BYTES if as_bytes else ANY_TEXT))
    blanks = draw(st.lists(st.sampled_from(["", " ", "\t", "\r"]), max_size=2))
    body = draw(st.permutations([*good_lines, *bad_lines, *blanks]))
    # Repeats of a stored event_id come after it: identical ones (spelled otherwise) are no-ops,
    # different ones are conflicts.
    repeats, conflicts = [], []
    for g, event_id in zip(good, ids, strict=True):
        if draw(st.booleans()):
            repeats.append(g.line(event_id, ascii_only=False))
        if draw(st.booleans()):
            properties = g.document.get("properties", {})
            other = {**properties, "conflict": ["not", properties.get("conflict")]}
            conflicts.append(Good(_with(g.document, "properties", other), g.instant).line(event_id))
    tail = draw(st.permutations([*repeats, *conflicts]))
    lines = [*body, *tail]
    bad_set = set(bad_lines) | set(conflicts)
    bad_numbers = {n for n, line in enumerate(lines, 1) if line in bad_set}
    if as_bytes:
        encoded = [
            line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
            for line in lines
        ]
        if encoded and draw(st.booleans()):
            encoded[0] = b"\xef\xbb\xbf" + encoded[0]
        lines = encoded
    return Case(
        lines,
        {i: g.expected() for g, i in zip(good, ids, strict=True)},
        bad_numbers,
        len(repeats),
        len(conflicts),
    )


FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check(engine: sa.Engine, case: Case, result: loader.LoadResult) -> None:
    for kind in result.reasons:
        event(f"quarantined as {kind}")
    assert stored(engine) == case.good  # good lines stored = good lines given, exactly
    assert set(quarantined(engine)) == case.bad  # every other line quarantined, by line number
    counts = (result.loaded, result.duplicate, result.quarantined, result.conflicting)
    assert counts == (len(case.good), case.duplicate, len(case.bad), case.conflicting)


@FUZZ
@given(case=cases(as_bytes=True), crlf=st.booleans())
def test_fuzzed_files_lose_no_good_line_and_keep_every_bad_one(
    engine: sa.Engine, now: dt.datetime, tmp_path: Path, case: Case, crlf: bool
) -> None:
    reset(engine)
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes((b"\r\n" if crlf else b"\n").join(case.lines))
    check(engine, case, loader.load_file(engine, path))


@FUZZ
@given(case=cases(as_bytes=False))
def test_fuzzed_lines_lose_no_good_line_and_keep_every_bad_one(
    engine: sa.Engine, now: dt.datetime, case: Case
) -> None:
    reset(engine)
    check(engine, case, loader.load_lines(engine, case.lines, source="fuzz"))


# --- the torture file ----------------------------------------------------------------------------

EMOJI = "\U0001f600"  # four bytes in UTF-8


def doc(name: str, **changes: Any) -> dict[str, Any]:
    """An events_sent document named after its torture line (its event_id)."""
    document = {
        "event_id": name,
        "customer_id": "cust_a",
        "metric": "events_sent",
        "occurred_at": "2025-01-15T12:00:00+00:00",
        "value": Num("1"),
        "properties": {"environment_type": "PRODUCTION"},
    }
    return {k: v for k, v in {**document, **changes}.items() if v is not DROP}


DROP = object()


def props(**extra: Any) -> dict[str, Any]:
    return {"environment_type": "PRODUCTION", **extra}


def nested(depth: int) -> Num:
    return Num("[" * depth + "]" * depth)


def line(name: str, **changes: Any) -> bytes:
    return dump(doc(name, **changes)).encode()


def raw(name: str, text: str) -> bytes:
    """A hand-written events_sent line: `text` replaces the placeholder @ in its JSON."""
    template = dump(doc(name, properties=Num("@")))
    return template.replace("@", text).encode()


def chat(name: str, customer_id: str, conversation_id: str) -> bytes:
    properties = {"conversation_id": conversation_id, "actor": "customer", "action": "message"}
    return dump(
        doc(name, metric="chat_action", customer_id=customer_id, properties=properties)
    ).encode()


def dispute(name: str, amount: Any) -> bytes:
    properties = {"dispute_id": "d1", "status": "won", "amount": amount}
    return dump(doc(name, metric="chargeback_dispute", properties=properties)).encode()


MAX = loader.MAX_LINE_BYTES
PAD = len(line("at-the-limit", properties=props(pad="")))
# (name, line as bytes, what becomes of it: stored, duplicate, blank, or the quarantine reason kind)
TORTURE: list[tuple[str, bytes, str]] = [
    ("bom-opens-the-file", b"\xef\xbb\xbf" + line("bom-opens-the-file"), "stored"),
    ("crlf", line("crlf") + b"\r", "stored"),
    ("cr-inside", line("cr-inside").replace(b", ", b",\r "), "stored"),
    ("empty", b"", "blank"),
    ("spaces-and-tabs", b" \t ", "blank"),
    ("lone-cr", b"\r", "blank"),
    ("nbsp-only", "\u00a0".encode(), "invalid_json"),
    ("form-feed-only", b"\x0c", "invalid_json"),
    ("bom-mid-file", b"\xef\xbb\xbf" + line("bom-mid-file"), "invalid_json"),
    ("over-the-limit", line("over-the-limit", properties=props(pad="x" * MAX)), "line_too_long"),
    ("at-the-limit", line("at-the-limit", properties=props(pad="x" * (MAX - PAD))), "stored"),
    ("long-property", line("long-property", properties=props(text="é" * 100_000)), "stored"),
    ("depth-100", line("depth-100", properties=props(d=nested(98))), "stored"),
    ("depth-101", line("depth-101", properties=props(d=nested(99))), "too_deep"),
    ("depth-5000", line("depth-5000", properties=props(d=nested(5000))), "too_deep"),
    ("repeated-key", line("repeated-key")[:-1] + b', "metric": "events_sent"}', "duplicate_key"),
    (
        "repeated-nested-key",
        raw("repeated-nested-key", '{"environment_type": "P", "environment_type": "P"}'),
        "duplicate_key",
    ),
    ("value-nan", line("value-nan", value=Num("NaN")), "invalid_json"),
    ("value-infinity", line("value-infinity", value=Num("Infinity")), "invalid_json"),
    (
        "property-minus-infinity",
        line("property-minus-infinity", properties=props(x=Num("-Infinity"))),
        "invalid_json",
    ),
    ("value-minus-zero", line("value-minus-zero", value=Num("-0")), "stored"),
    ("value-minus-zero-string", line("value-minus-zero-string", value="-0.00"), "stored"),
    ("property-1e400", line("property-1e400", properties=props(x=Num("1E+400"))), "stored"),
    ("property-1e131071", line("property-1e131071", properties=props(x=Num("1e131071"))), "stored"),
    (
        "property-1e131072",
        line("property-1e131072", properties=props(x=Num("1e131072"))),
        "bad_number",
    ),
    ("property-1e-16383", line("property-1e-16383", properties=props(x=Num("1e-16383"))), "stored"),
    (
        "property-1e-16384",
        line("property-1e-16384", properties=props(x=Num("1e-16384"))),
        "bad_number",
    ),
    (
        "property-0e-16384",
        line("property-0e-16384", properties=props(x=Num("0e-16384"))),
        "bad_number",
    ),
    (
        "property-1e1000000",
        line("property-1e1000000", properties=props(x=Num("1e1000000"))),
        "bad_number",
    ),
    ("extra-field-1e1000000", line("extra-field-1e1000000", extra=Num("1e1000000")), "bad_number"),
    (
        "property-5000-digits",
        line("property-5000-digits", properties=props(x=Num("7" * 5000))),
        "stored",
    ),
    ("value-1000-digits", line("value-1000-digits", value=Num("9" * 1000)), "stored"),
    ("value-1001-digits", line("value-1001-digits", value=Num("9" * 1001)), "bad_value"),
    (
        "value-1-and-2000-zeros",
        line("value-1-and-2000-zeros", value=Num("1" + "0" * 2000)),
        "stored",
    ),
    ("value-string-1e1000000", line("value-string-1e1000000", value="1e1000000"), "bad_value"),
    ("value-string-1e-100000", line("value-string-1e-100000", value="1e-100000"), "bad_value"),
    (
        "value-exponent-beyond-decimal",
        line("value-exponent-beyond-decimal", value=Num("1e99999999999999999999")),
        "bad_number",
    ),
    ("value-underscores", line("value-underscores", value="1_000"), "bad_value"),
    ("value-padded", line("value-padded", value="  7  "), "bad_value"),
    ("value-hex", line("value-hex", value="0x1F"), "bad_value"),
    ("value-plus", line("value-plus", value="+1"), "bad_value"),
    ("value-leading-dot", line("value-leading-dot", value=".5"), "bad_value"),
    ("value-arabic-digit", line("value-arabic-digit", value="\u0661"), "bad_value"),
    ("value-string-1e2", line("value-string-1e2", value="1e2"), "stored"),
    ("value-true", line("value-true", value=True), "bad_value"),
    ("value-null", line("value-null", value=None), "bad_value"),
    ("value-list", line("value-list", value=[1]), "bad_value"),
    ("value-negative", line("value-negative", value=Num("-0.01")), "negative_value"),
    ("value-absent", line("value-absent", value=DROP), "stored"),
    ("time-no-offset", line("time-no-offset", occurred_at="2025-01-15T12:00:00"), "bad_timestamp"),
    ("time-date-only", line("time-date-only", occurred_at="2025-01-15"), "bad_timestamp"),
    ("time-z", line("time-z", occurred_at="2025-01-15T12:00:00Z"), "stored"),
    (
        "time-comma-fraction",
        line("time-comma-fraction", occurred_at="2025-01-15T12:00:00,5Z"),
        "stored",
    ),
    (
        "time-nanoseconds",
        line("time-nanoseconds", occurred_at="2025-01-15T12:00:00.123456789Z"),
        "bad_timestamp",
    ),
    (
        "time-zero-nanoseconds",
        line("time-zero-nanoseconds", occurred_at="2025-01-15T12:00:00.123456000Z"),
        "stored",
    ),
    ("time-week-date", line("time-week-date", occurred_at="2025-W03-3T12:00Z"), "stored"),
    (
        "time-leap-second",
        line("time-leap-second", occurred_at="2025-01-15T23:59:60Z"),
        "bad_timestamp",
    ),
    ("time-hour-24", line("time-hour-24", occurred_at="2025-01-15T24:00:00Z"), "bad_timestamp"),
    (
        "time-offset-seconds",
        line("time-offset-seconds", occurred_at="2025-01-15T12:00:00+05:30:15"),
        "stored",
    ),
    (
        "time-fullwidth-digits",
        line("time-fullwidth-digits", occurred_at="\uff12\uff10\uff12\uff15-01-15T12:00:00Z"),
        "bad_timestamp",
    ),
    ("time-year-1", line("time-year-1", occurred_at="0001-01-01T00:00:00+01:00"), "bad_timestamp"),
    (
        "time-year-9999",
        line("time-year-9999", occurred_at="9999-12-31T23:00:00-12:00"),
        "bad_timestamp",
    ),
    (
        "time-before-first-partition",
        line("time-before-first-partition", occurred_at="2024-12-31T23:59:59.999999Z"),
        "before_first_partition",
    ),
    ("time-24-hours-ahead", line("time-24-hours-ahead", occurred_at=LATEST.isoformat()), "stored"),
    (
        "time-too-far-ahead",
        line("time-too-far-ahead", occurred_at=(LATEST + dt.timedelta(microseconds=1)).isoformat()),
        "in_the_future",
    ),
    ("time-number", line("time-number", occurred_at=Num("1736942400")), "bad_field"),
    ("id-256", line("i" * 256), "stored"),
    ("id-257", line("i" * 257), "bad_field"),
    ("id-20-kb", line("i" * 20_000), "bad_field"),
    ("customer-256-emoji", line("customer-256-emoji", customer_id=EMOJI * 256), "stored"),
    ("customer-blank", line("customer-blank", customer_id=" \t"), "bad_field"),
    ("customer-padded", line("customer-padded", customer_id=" cust_a "), "stored"),
    ("customer-number", line("customer-number", customer_id=Num("7")), "bad_field"),
    ("id-nul-escape", line("id-nul-escape\x00"), "bad_string"),
    (
        "customer-lone-surrogate",
        line("customer-lone-surrogate", customer_id="\ud800"),
        "bad_string",
    ),
    (
        "customer-reversed-pair",
        line("customer-reversed-pair", customer_id="\udc00\ud800"),
        "bad_string",
    ),
    (
        "customer-surrogate-pair",
        line("customer-surrogate-pair", customer_id="\ud83d\ude00"),
        "stored",
    ),
    ("customer-line-separator", line("customer-line-separator", customer_id="a\u2028b"), "stored"),
    ("metric-nul", line("metric-nul", metric="events_sent\x00"), "bad_string"),
    ("metric-unknown", line("metric-unknown", metric="page_views"), "unknown_metric"),
    (
        "chat-index-at-the-limit",
        chat("chat-index-at-the-limit", EMOJI * 256, EMOJI * 256),
        "stored",
    ),
    ("chat-conversation-257", chat("chat-conversation-257", "c", "c" * 257), "bad_property"),
    ("properties-null", line("properties-null", properties=None), "bad_field"),
    ("properties-list", line("properties-list", properties=[]), "bad_field"),
    ("properties-string", line("properties-string", properties="x"), "bad_field"),
    (
        "properties-nul-key",
        line("properties-nul-key", properties=props(**{"a\x00": 1})),
        "bad_string",
    ),
    (
        "properties-nested-surrogate",
        line("properties-nested-surrogate", properties=props(x=[{"y": "\udfff"}])),
        "bad_string",
    ),
    (
        "required-number",
        line("required-number", properties={"environment_type": Num("5")}),
        "stored",
    ),
    ("required-boolean", line("required-boolean", properties={"environment_type": True}), "stored"),
    (
        "required-257",
        line("required-257", properties={"environment_type": "P" * 257}),
        "bad_property",
    ),
    (
        "required-object",
        line("required-object", properties={"environment_type": {}}),
        "bad_property",
    ),
    ("required-missing", line("required-missing", properties={}), "missing_property"),
    (
        "required-null",
        line("required-null", properties={"environment_type": None}),
        "missing_property",
    ),
    ("amount-comma", dispute("amount-comma", "12,50"), "bad_value"),
    ("amount-negative", dispute("amount-negative", "-1"), "negative_value"),
    ("amount-boolean", dispute("amount-boolean", True), "bad_value"),
    ("amount-exponent", dispute("amount-exponent", "1e2"), "stored"),
    (
        "utf8-lone-continuation",
        line("utf8-lone-continuation").replace(b"cust_a", b"cust\x80"),
        "invalid_utf8",
    ),
    (
        "utf8-overlong-nul",
        line("utf8-overlong-nul").replace(b"cust_a", b"cust\xc0\x80"),
        "invalid_utf8",
    ),
    (
        "utf8-encoded-surrogate",
        line("utf8-encoded-surrogate").replace(b"cust_a", b"cust\xed\xa0\x80"),
        "invalid_utf8",
    ),
    ("utf8-latin1", line("utf8-latin1").replace(b"cust_a", b"caf\xe9"), "invalid_utf8"),
    ("utf8-truncated-at-end", line("utf8-truncated-at-end") + b"\xe2\x82", "invalid_utf8"),
    ("raw-nul-byte", line("raw-nul-byte").replace(b"cust_a", b"cust\x00"), "invalid_json"),
    (
        "raw-control-character",
        line("raw-control-character").replace(b"cust_a", b"cust\x01"),
        "invalid_json",
    ),
    ("raw-tab-in-string", line("raw-tab-in-string").replace(b"cust_a", b"cust\t"), "invalid_json"),
    ("top-level-array", b"[1, 2]", "invalid_json"),
    ("top-level-string", b'"event"', "invalid_json"),
    ("top-level-number", b"7", "invalid_json"),
    ("top-level-null", b"null", "invalid_json"),
    ("empty-object", b"{}", "missing_field"),
    ("open-brace", b"{", "invalid_json"),
    ("trailing-comma", line("trailing-comma")[:-1] + b",}", "invalid_json"),
    ("single-quotes", line("single-quotes").replace(b'"', b"'"), "invalid_json"),
    ("comment", line("comment") + b" // note", "invalid_json"),
    ("two-objects", line("two-objects") + b" {}", "invalid_json"),
    (
        "identical-duplicate",
        dump(doc("crlf", value=Num("1.000"), occurred_at="2025-01-15T13:00:00+01:00")).encode(),
        "duplicate",
    ),
    ("conflict", line("crlf", value=Num("2")), "conflict"),
    ("last-line-without-newline", line("last-line-without-newline"), "stored"),
]


def test_the_torture_file(engine: sa.Engine, now: dt.datetime, tmp_path: Path) -> None:
    path = tmp_path / "torture.jsonl"
    path.write_bytes(b"\n".join(entry[1] for entry in TORTURE))
    result = loader.load_file(engine, path)

    rows, reasons = stored(engine), quarantined(engine)
    fates = [fate for _, _, fate in TORTURE]
    kept = {"stored", "duplicate", "blank"}
    expected = {n: (name, fate) for n, (name, _, fate) in enumerate(TORTURE, 1) if fate not in kept}
    assert {n: (expected.get(n, ("?", ""))[0], kind) for n, kind in reasons.items()} == expected
    stored_names = {name for name, _, fate in TORTURE if fate == "stored"}
    event_ids = {
        name: json.loads(line.lstrip(b"\xef\xbb\xbf"), parse_int=Decimal)["event_id"]
        for name, line, _ in TORTURE
        if name in stored_names
    }
    assert set(rows) == set(event_ids.values())
    assert (result.loaded, result.duplicate, result.quarantined, result.conflicting) == (
        len(stored_names),
        fates.count("duplicate"),
        len(expected),
        1,
    )
    rows = {name: rows[event_id] for name, event_id in event_ids.items()}
    exact = {
        "value-minus-zero": Decimal(0),
        "value-1000-digits": Decimal("9" * 1000),
        "value-1-and-2000-zeros": Decimal("1e2000"),
        "value-string-1e2": Decimal(100),
        "value-absent": Decimal(1),
        "crlf": Decimal(1),
    }
    assert {name: rows[name][3] for name in exact} == exact
    assert rows["property-1e400"][4] == canon(props(x=Num("1E+400")))
    assert rows["property-5000-digits"][4] == canon(props(x=Num("7" * 5000)))
    assert rows["time-offset-seconds"][2] == dt.datetime(2025, 1, 15, 6, 29, 45, tzinfo=dt.UTC)

    # Nothing in it loads on a retry, and the retry survives it too.
    retried = loader.retry_quarantine(engine)
    assert (retried.loaded, retried.quarantined) == (0, len(expected))
    with engine.connect() as conn:
        flags = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE line_truncated),"
                " count(*) FILTER (WHERE line_escaped) FROM quarantined_metrics"
            )
        ).one()
    assert tuple(flags) == (1, fates.count("invalid_utf8") + 1)  # + the raw NUL byte


# --- concurrent loads ----------------------------------------------------------------------------


def test_concurrent_loads_of_overlapping_files_count_every_line_once(
    engine: sa.Engine, now: dt.datetime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two loads race over the same event ids in opposite orders, small chunks interleaving;
    every tenth id has other content in the second file. Whichever wins an id, the other line is
    a duplicate or a conflict, never lost, never a deadlock or an exception."""
    monkeypatch.setattr(loader, "CHUNK_LINES", 50)
    count, differing = 2000, range(0, 2000, 10)
    first = [line(f"id-{n}", value=Num(str(n))) for n in range(count)]
    second = [line(f"id-{n}", value=Num(str(n + (n in differing)))) for n in range(count)][::-1]
    paths = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    for path, lines in zip(paths, [first, second], strict=True):
        path.write_bytes(b"\n".join(lines))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda path: loader.load_file(engine, path), paths))

    assert len(stored(engine)) == count
    assert sum(r.loaded for r in results) == count
    assert sum(r.conflicting for r in results) == len(differing)
    assert sum(r.quarantined for r in results) == len(differing)
    assert sum(r.duplicate for r in results) == count - len(differing)
    assert all(r.read == count for r in results)
