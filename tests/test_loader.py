import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import line, sent
from usage_billing import cli, collectors, loader
from usage_billing.collectors import RawMetric, raw_metrics

pytestmark = pytest.mark.integration

GOOD = [
    sent("e1", "2025-01-01T10:00:00+00:00", 3),
    sent("e2", "2025-01-01T11:00:00-05:00", "12345678901234567890.123456789"),
    sent("e3", "2025-01-02T00:00:00Z", 0.1),
]
BAD = {
    "invalid_json": '{"event_id": "b1", "customer_id": ',
    "missing_field": json.dumps({"event_id": "b2", "metric": "events_sent"}),
    "bad_value": sent("b3", "2025-01-01T00:00:00+00:00", "twelve"),
    "bad_timestamp": sent("b4", "yesterday at noon"),
    "unknown_metric": line("b5", metric="page_views"),
    "missing_property": line("b6", metric="events_sent"),
}


def _raw(engine: sa.Engine) -> dict[str, tuple[Decimal, dict]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT event_id, value, properties FROM raw_metrics"))
        return {r.event_id: (r.value, r.properties) for r in rows}


def _quarantine(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        sql = "SELECT line_number, line, reason, resolved_at FROM quarantined_metrics ORDER BY 1"
        return conn.execute(sa.text(sql)).all()


def test_valid_lines_load_exactly(engine: sa.Engine) -> None:
    result = loader.load_lines(engine, GOOD, source="good")
    assert (result.loaded, result.duplicate, result.quarantined) == (3, 0, 0)
    raw = _raw(engine)
    assert raw["e2"][0] == Decimal("12345678901234567890.123456789")
    assert raw["e3"][0] == Decimal("0.1")
    assert raw["e1"][1] == {"environment_type": "PRODUCTION"}


def test_reloading_changes_nothing(engine: sa.Engine) -> None:
    loader.load_lines(engine, GOOD, source="good")
    before = _raw(engine)
    again = loader.load_lines(engine, GOOD, source="good")
    assert (again.loaded, again.duplicate) == (0, 3)
    assert _raw(engine) == before


def test_duplicate_event_id_inside_one_file_loads_once(engine: sa.Engine) -> None:
    result = loader.load_lines(engine, [GOOD[0], GOOD[0]], source="dup")
    assert (result.loaded, result.duplicate) == (1, 1)


@pytest.mark.parametrize("kind", sorted(BAD))
def test_each_bad_input_is_quarantined_with_its_reason(engine: sa.Engine, kind: str) -> None:
    result = loader.load_lines(engine, [BAD[kind]], source="bad")
    assert (result.loaded, result.quarantined) == (0, 1)
    assert result.reasons == {kind: 1}
    [entry] = _quarantine(engine)
    assert entry.line == BAD[kind]
    assert entry.reason.startswith(kind)
    assert _raw(engine) == {}


def test_properties_keep_exact_numbers(engine: sa.Engine) -> None:
    text = sent("p1", "2025-01-01T00:00:00+00:00", amount="AMOUNT").replace(
        '"AMOUNT"', "12345678901234567.891"
    )
    loader.load_lines(engine, [text], source="p")
    with engine.connect() as conn:
        amount = conn.execute(
            sa.text("SELECT (properties->>'amount')::numeric FROM raw_metrics")
        ).scalar_one()
    assert amount == Decimal("12345678901234567.891")


def test_mixed_file_loses_nothing_and_doubles_nothing(engine: sa.Engine, tmp_path: Path) -> None:
    lines = [GOOD[0], BAD["bad_value"], GOOD[1], GOOD[0], BAD["invalid_json"], GOOD[2], ""]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    first = loader.load_file(engine, path)
    assert (first.loaded, first.duplicate, first.quarantined) == (3, 1, 2)
    second = loader.load_file(engine, path)
    assert (second.loaded, second.duplicate, second.quarantined) == (0, 4, 2)
    assert set(_raw(engine)) == {"e1", "e2", "e3"}
    quarantined = _quarantine(engine)
    assert [q.line_number for q in quarantined] == [2, 5]  # kept once, with its line number


def test_quarantined_lines_load_once_their_cause_is_fixed(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    page_view = line("pv1", metric="page_views", path="/")
    loader.load_lines(engine, [page_view, BAD["bad_value"]], source="q")
    assert loader.retry_quarantine(engine).loaded == 0
    # A collector for page_views is added: the registry now knows the raw metric.
    known = {**raw_metrics(), "page_views": RawMetric("page_views", ("path",))}
    monkeypatch.setattr(loader, "raw_metrics", lambda: known)
    retried = loader.retry_quarantine(engine)
    assert (retried.loaded, retried.quarantined) == (1, 1)
    assert "pv1" in _raw(engine)
    resolved = {q.line: q.resolved_at is not None for q in _quarantine(engine)}
    assert resolved == {page_view: True, BAD["bad_value"]: False}
    assert loader.retry_quarantine(engine).loaded == 0


def test_cli_prints_counts_and_exit_codes(
    engine: sa.Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([GOOD[0], BAD["bad_timestamp"]]))
    assert cli.main(["load", str(mixed)]) == 0
    assert "loaded 1 / duplicate 0 / quarantined 1" in capsys.readouterr().out
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\nalso not json\n")
    assert cli.main(["load", str(garbage)]) == 1
    assert cli.main(["load", str(tmp_path / "missing.jsonl")]) == 2
    assert "is not a readable file" in capsys.readouterr().err


# --- the clock: nothing from before the first partition or more than 24 h ahead ------------------


def test_lines_dated_too_far_ahead_or_before_the_first_partition_are_quarantined(
    engine: sa.Engine, now: dt.datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    just_in = sent("in", (now + dt.timedelta(hours=24)).isoformat())
    ahead = sent("ahead", (now + dt.timedelta(hours=24, microseconds=1)).isoformat())
    first = sent("first", "2025-01-01T00:00:00+00:00")
    early = sent("early", "2025-01-01T00:59:59.999999+01:00")  # 2024-12-31 23:59:59.999999 UTC
    result = loader.load_lines(engine, [just_in, ahead, first, early], source="clock")
    assert (result.loaded, result.quarantined) == (2, 2)
    assert result.reasons == {"in_the_future": 1, "before_first_partition": 1}
    assert set(_raw(engine)) == {"in", "first"}
    reasons = {q.line: q.reason for q in _quarantine(engine)}
    assert "more than 24 h after the time of loading" in reasons[ahead]
    assert "before the first partition, 2025-01" in reasons[early]

    # The retry applies the same rules with the clock of its own time: the line's time has come.
    assert loader.retry_quarantine(engine).loaded == 0
    monkeypatch.setenv("USAGE_BILLING_NOW", (now + dt.timedelta(hours=1)).isoformat())
    retried = loader.retry_quarantine(engine)
    assert (retried.loaded, retried.quarantined) == (1, 1)
    assert retried.reasons == {"before_first_partition": 1}
    assert set(_raw(engine)) == {"in", "first", "ahead"}


# --- one bad line never kills a load -------------------------------------------------------------


def _raw_line(**fields: str) -> str:
    """An events_sent line written by hand: each field is JSON text, so that it can hold what
    json.dumps never writes."""
    parts = {
        "event_id": '"k"',
        "customer_id": '"cust_a"',
        "metric": '"events_sent"',
        "occurred_at": '"2025-01-15T12:00:00+00:00"',
        "properties": '{"environment_type": "PRODUCTION"}',
        **fields,
    }
    return "{" + ", ".join(f'"{key}": {value}' for key, value in parts.items()) + "}"


KILLERS = {
    "year_1_at_plus_one": ("bad_timestamp", sent("k", "0001-01-01T00:00:00+01:00")),
    "year_9999_at_minus_twelve": ("bad_timestamp", sent("k", "9999-12-31T23:00:00-12:00")),
    "value_string_1e1000000": ("bad_value", sent("k", "2025-01-15T12:00:00Z", "1e1000000")),
    "value_string_1e-100000": ("bad_value", sent("k", "2025-01-15T12:00:00Z", "1e-100000")),
    "value_number_1e1000000": ("bad_number", _raw_line(value="1e1000000")),
    "property_number_1e1000000": (
        "bad_number",
        _raw_line(properties='{"environment_type": "PRODUCTION", "n": 1e1000000}'),
    ),
    "value_exponent_beyond_decimal": ("bad_number", _raw_line(value="1e99999999999999999999")),
    "nul_escape_in_event_id": ("bad_string", _raw_line(event_id='"k\\u0000"')),
    "nul_escape_in_property": (
        "bad_string",
        _raw_line(properties='{"environment_type": "PRODUCTION", "x": ["\\u0000"]}'),
    ),
    "nul_escape_in_property_key": (
        "bad_string",
        _raw_line(properties='{"environment_type": "PRODUCTION", "\\u0000": 1}'),
    ),
    "lone_surrogate_escape": ("bad_string", _raw_line(customer_id='"\\ud800"')),
    "lone_surrogate_character": ("bad_string", sent("k\ud800", "2025-01-15T12:00:00Z")),
    "raw_nul_character": ("invalid_json", sent("k", "2025-01-15T12:00:00Z").replace("k", "k\0")),
    "event_id_20_kb": ("bad_field", sent("k" * 20_000, "2025-01-15T12:00:00Z")),
    "customer_id_257": ("bad_field", sent("k", "2025-01-15T12:00:00Z", customer_id="c" * 257)),
    "required_property_20_kb": (
        "bad_property",
        sent("k", "2025-01-15T12:00:00Z", environment_type="P" * 20_000),
    ),
    "required_property_object": (
        "bad_property",
        _raw_line(properties='{"environment_type": {"a": 1}}'),
    ),
    "deep_nesting": (
        "too_deep",
        _raw_line(properties='{"environment_type": "P", "d": ' + "[" * 5000 + "]" * 5000 + "}"),
    ),
}


@pytest.mark.parametrize("name", sorted(KILLERS))
def test_a_line_postgres_or_python_cannot_hold_costs_only_itself(
    engine: sa.Engine, name: str
) -> None:
    kind, killer = KILLERS[name]
    before, after = sent("before", "2025-01-15T12:00:00Z"), sent("after", "2025-01-15T13:00:00Z")
    result = loader.load_lines(engine, [before, killer, after], source="killers")
    assert (result.loaded, result.quarantined) == (2, 1)
    assert result.reasons == {kind: 1}
    assert set(_raw(engine)) == {"before", "after"}
    [entry] = _quarantine(engine)
    assert entry.line_number == 2
    assert entry.reason.startswith(f"{kind}: ")


def test_invalid_utf8_costs_one_line_and_is_kept_escaped(engine: sa.Engine, tmp_path: Path) -> None:
    bad = sent("bad", "2025-01-15T12:00:00Z").encode().replace(b"bad", b"b\xffd")
    nul = sent("nul", "2025-01-15T12:00:00Z").encode().replace(b"nul", b"n\x00l")
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(b"\n".join([GOOD[0].encode(), bad, nul, GOOD[1].encode()]) + b"\n")
    result = loader.load_file(engine, path)
    assert (result.loaded, result.quarantined) == (2, 2)
    assert result.reasons == {"invalid_utf8": 1, "invalid_json": 1}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT line_number, line, line_escaped FROM quarantined_metrics ORDER BY 1")
        ).all()
    assert [(r.line_number, r.line_escaped) for r in rows] == [(2, True), (3, True)]
    assert '"b\\xffd"' in rows[0].line and '"n\\x00l"' in rows[1].line
    # Lines that could never load are not re-tried.
    assert loader.retry_quarantine(engine).quarantined == 2


def test_a_bom_opens_a_file_and_crlf_ends_its_lines(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(("\ufeff" + "\r\n".join(GOOD) + "\r\n\r\n").encode())
    assert loader.load_file(engine, path).loaded == 3


def test_huge_lines_are_kept_once_truncated(engine: sa.Engine, tmp_path: Path) -> None:
    huge = sent("huge", "2025-01-15T12:00:00Z", blob="x" * loader.MAX_LINE_BYTES)
    path = tmp_path / "huge.jsonl"
    path.write_text("\n".join([huge, GOOD[0], huge]) + "\n")
    for _ in range(2):
        result = loader.load_file(engine, path)
        assert result.reasons == {"line_too_long": 2}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT line_number, length(line) AS n, line_truncated FROM quarantined_metrics"
            )
        ).all()
    assert sorted(rows) == [(1, loader.QUARANTINED_HEAD_BYTES, True)] * 1 + [
        (3, loader.QUARANTINED_HEAD_BYTES, True)
    ]
    assert set(_raw(engine)) == {"e1"}


def test_a_20_kb_line_is_quarantined_once(engine: sa.Engine) -> None:
    # The quarantine's own unique index once held the whole line: "index row size exceeds".
    bad = sent("k" * 20_000, "2025-01-15T12:00:00Z")
    for _ in range(2):
        assert loader.load_lines(engine, [bad], source="big").quarantined == 1
    [entry] = _quarantine(engine)
    assert entry.line == bad


# --- numbers: JSON's grammar, exact --------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["1_000", "  7  ", "+1", ".5", "1.", "0x10", "\u0661", "NaN", "1e"]
)
def test_decimal_strings_follow_json_number_grammar(engine: sa.Engine, text: str) -> None:
    result = loader.load_lines(engine, [sent("s", "2025-01-15T12:00:00Z", text)], source="n")
    assert result.reasons == {"bad_value": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("-0", Decimal(0)), ("1E+2", Decimal(100)), ("0.000", Decimal(0)), ("1e-16383", None)],
)
def test_decimal_strings_load_exactly(
    engine: sa.Engine, text: str, expected: Decimal | None
) -> None:
    assert loader.load_lines(engine, [sent("s", "2025-01-15T12:00:00Z", text)], "n").loaded == 1
    assert _raw(engine)["s"][0] == (expected if expected is not None else Decimal(text))


def test_integers_of_any_length_parse_exactly(engine: sa.Engine) -> None:
    digits = "9" * 5000  # past Python's 4300-digit int limit
    line = _raw_line(properties=f'{{"environment_type": "PRODUCTION", "n": {digits}}}')
    assert loader.load_lines(engine, [line], source="n").loaded == 1
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT (properties->>'n')::numeric FROM raw_metrics")
        ).scalar_one()
    assert stored == Decimal(digits)


# --- negative values and typed properties --------------------------------------------------------


def test_negative_values_are_quarantined_unless_the_raw_metric_is_signed(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    negative = sent("neg", "2025-01-15T12:00:00Z", "-2")
    result = loader.load_lines(engine, [negative, sent("zero", "2025-01-15T12:00:00Z", "-0")], "n")
    assert (result.loaded, result.reasons) == (1, {"negative_value": 1})
    assert "raw metric 'events_sent' is not signed" in _quarantine(engine)[0].reason
    signed = {
        **raw_metrics(),
        "events_sent": RawMetric("events_sent", ("environment_type",), (), True),
    }
    monkeypatch.setattr(loader, "raw_metrics", lambda: signed)
    assert loader.retry_quarantine(engine).loaded == 1
    assert _raw(engine)["neg"][0] == Decimal(-2)


def _dispute(event_id: str, amount: object) -> str:
    return line(event_id, metric="chargeback_dispute", dispute_id="d1", status="won", amount=amount)


def _decision(event_id: str, amount: object) -> str:
    return line(
        event_id, metric="transaction_decision", order_id="o1", decision="approved", amount=amount
    )


@pytest.mark.parametrize("build", [_dispute, _decision])
def test_amounts_the_collectors_cast_must_be_non_negative_decimals(
    engine: sa.Engine, build
) -> None:
    lines = [
        build("text", "twelve"),
        build("comma", "12,50"),
        build("bool", True),
        build("object", {"value": "1"}),
        build("negative", "-12.50"),
        build("string", "12.50"),
        build("number", 12.5),
        build("absent", None),
    ]
    result = loader.load_lines(engine, lines, source="amounts")
    assert result.reasons == {"bad_value": 4, "negative_value": 1}
    assert set(_raw(engine)) == {"string", "number", "absent"}


# --- conflicting duplicates ----------------------------------------------------------------------

STORED = sent("x", "2025-01-15T12:00:00+00:00", "1.5", extra={"n": 1, "s": "é"})
SAME_CONTENT = [
    # The same instant at another offset, the same numbers spelled otherwise, keys reordered.
    json.dumps(
        {
            "properties": {"extra": {"s": "\u00e9", "n": 1.0}, "environment_type": "PRODUCTION"},
            "value": 1.50,
            "occurred_at": "2025-01-15T13:00:00+01:00",
            "metric": "events_sent",
            "customer_id": "cust_a",
            "event_id": "x",
        },
        ensure_ascii=True,
    ),
    STORED.replace('"1.5"', '"15e-1"'),
]
CONFLICTS = {
    "customer_id": sent(
        "x", "2025-01-15T12:00:00+00:00", "1.5", customer_id="cust_b", extra={"n": 1, "s": "é"}
    ),
    "occurred_at": sent("x", "2025-01-15T12:00:01+00:00", "1.5", extra={"n": 1, "s": "é"}),
    "value": sent("x", "2025-01-15T12:00:00+00:00", "1.6", extra={"n": 1, "s": "é"}),
    "properties": sent("x", "2025-01-15T12:00:00+00:00", "1.5", extra={"n": 2, "s": "é"}),
    "metric": line("x", metric="chargeback_alert", alert_id="a", outcome="prevented"),
}


def test_identical_duplicates_are_no_ops_and_conflicts_are_quarantined(
    engine: sa.Engine,
) -> None:
    assert loader.load_lines(engine, [STORED], source="first").loaded == 1
    before = _raw(engine)
    result = loader.load_lines(engine, [*SAME_CONTENT, *CONFLICTS.values()], source="second")
    assert (result.loaded, result.duplicate, result.quarantined, result.conflicting) == (
        0,
        len(SAME_CONTENT),
        len(CONFLICTS),
        len(CONFLICTS),
    )
    assert _raw(engine) == before  # the stored row stays
    reasons = [q.reason for q in _quarantine(engine)]
    for field_name, reason in zip(CONFLICTS, reasons, strict=True):
        assert reason.startswith("conflict: event_id 'x' is stored with another ")
        assert field_name in reason.split("another ", 1)[1]
    # A conflict stays a conflict however often it is retried.
    retried = loader.retry_quarantine(engine)
    assert (retried.loaded, retried.quarantined, retried.conflicting) == (0, 5, 5)
    assert all(q.resolved_at is None for q in _quarantine(engine))


def test_conflicts_inside_one_file_keep_the_first_line(engine: sa.Engine) -> None:
    result = loader.load_lines(
        engine, [STORED, CONFLICTS["value"], STORED, CONFLICTS["value"]], source="one"
    )
    assert (result.loaded, result.duplicate, result.conflicting) == (1, 1, 2)
    assert _raw(engine)["x"][0] == Decimal("1.5")
    assert [q.line_number for q in _quarantine(engine)] == [2, 4]


def test_conflicts_across_chunks_of_one_file(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "CHUNK_LINES", 2)
    result = loader.load_lines(
        engine, [GOOD[0], STORED, GOOD[1], CONFLICTS["occurred_at"], STORED], source="chunks"
    )
    assert (result.loaded, result.duplicate, result.conflicting) == (3, 1, 1)


def test_load_json_counts_add_up(
    engine: sa.Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "conflicts.jsonl"
    path.write_text("\n".join([STORED, STORED, CONFLICTS["value"], BAD["bad_value"], ""]) + "\n")
    assert cli.main(["load", str(path), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts == {"loaded": 1, "duplicate": 1, "quarantined": 2, "conflicting": 1}
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT count(*) FROM quarantined_metrics")).scalar_one()
    assert kept == counts["quarantined"]  # conflicts are quarantined lines


# --- collector headers: what the loader accepts --------------------------------------------------

HEADER = "-- billable_metric: m\n-- description: d\n-- restatement_horizon_days: 1\n"


def test_raw_metric_declarations_type_properties_and_allow_negatives() -> None:
    collector = collectors.parse(
        "m.sql",
        HEADER
        + "-- raw_metric: refund(order_id, amount: decimal, fee?: decimal) signed\n"
        + "-- raw_metric: order(order_id)\nSELECT 1",
    )
    refund, order = collector.raw_metrics
    assert refund == RawMetric("refund", ("order_id", "amount"), ("amount", "fee"), True)
    assert order == RawMetric("order", ("order_id",), (), False)
    for bad in ["refund(fee?)", "refund(amount: money)", "refund(a b)", "refund() unsigned"]:
        with pytest.raises(collectors.CollectorDefinitionError):
            collectors.parse("m.sql", f"{HEADER}-- raw_metric: {bad}\nSELECT 1")


def test_a_collector_declares_every_clock_offset_its_sql_uses() -> None:
    head = f"{HEADER}-- raw_metric: order(order_id)\n"
    uses = "SELECT 1 WHERE a < :as_of - interval '24 hours' AND b <= :as_of"
    parsed = collectors.parse("m.sql", f"{head}-- clock_offsets_hours: 24\n{uses}")
    assert parsed.clock_offsets == (dt.timedelta(0), dt.timedelta(hours=24))
    assert collectors.parse("m.sql", f"{head}SELECT :as_of").clock_offsets == (dt.timedelta(0),)
    for declared, body in [
        ("", uses),  # undeclared
        ("-- clock_offsets_hours: 12\n", uses),  # another offset
        ("-- clock_offsets_hours: 24\n", "SELECT :as_of + interval '24 hours'"),  # not a cut
        ("", "SELECT :as_of::date"),  # a cut that jumps at midnight
        ("-- clock_offsets_hours: a day\n", "SELECT 1"),
    ]:
        with pytest.raises(collectors.CollectorDefinitionError):
            collectors.parse("m.sql", f"{head}{declared}{body}")


def test_shipped_declarations() -> None:
    declared = raw_metrics()
    assert declared["chargeback_dispute"].decimal_properties == ("amount",)
    assert declared["transaction_decision"].decimal_properties == ("amount",)
    assert not any(raw.signed for raw in declared.values())  # no raw metric may be negative today


def test_a_file_name_that_is_not_utf8_is_a_source_like_any_other(
    engine: sa.Engine, tmp_path: Path
) -> None:
    path = tmp_path / os.fsdecode(b"caf\xe9.jsonl")
    path.write_text("\n".join([GOOD[0], BAD["bad_value"]]))
    result = loader.load_file(engine, path)
    assert (result.loaded, result.quarantined) == (1, 1)
    with engine.connect() as conn:
        source = conn.execute(sa.text("SELECT source FROM quarantined_metrics")).scalar_one()
    assert source.endswith("caf\\xe9.jsonl")
