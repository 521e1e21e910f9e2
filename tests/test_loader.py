import json
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import line, sent
from usage_billing import cli, loader
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
