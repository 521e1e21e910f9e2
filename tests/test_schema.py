import pytest
import sqlalchemy as sa

from tests.helpers import sent
from usage_billing import db, loader

pytestmark = pytest.mark.integration

_COLUMNS = sa.text(
    "SELECT column_name, data_type FROM information_schema.columns"
    " WHERE table_name = :table ORDER BY ordinal_position"
)
TABLES = {"raw_metrics", "quarantined_metrics", "aggregated_usage", "usage_events"}


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_schema_creates_the_contract_table(engine: sa.Engine) -> None:
    assert _tables(engine) >= TABLES
    with engine.connect() as conn:  # SQLAlchemy's reflection does not know xid8
        columns = dict(conn.execute(_COLUMNS, {"table": "raw_metrics"}).all())
    assert list(columns) == [
        "event_id",
        "customer_id",
        "metric",
        "occurred_at",
        "received_at",
        "value",
        "properties",
        "loaded_xid",  # an extension (late-data detection), after the contract's columns
    ]
    assert columns["value"] == "numeric" and columns["loaded_xid"] == "xid8"
    assert sa.inspect(engine).get_pk_constraint("raw_metrics")["constrained_columns"] == [
        "event_id"
    ]


def test_init_is_idempotent_and_keeps_data(engine: sa.Engine) -> None:
    loader.load_lines(engine, [sent("e1", "2025-01-01T00:00:00+00:00", 5)], source="t")
    db.init_schema(engine)
    db.init_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM raw_metrics")).scalar_one() == 5
    assert _tables(engine) >= TABLES


def test_init_migrates_the_quarantine_to_a_hashed_line_key(engine: sa.Engine) -> None:
    # A quarantine created by an earlier release: its UNIQUE (source, line_number, line) cannot
    # index a line over ~2.7 kB.
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE quarantined_metrics")
        conn.exec_driver_sql(
            "CREATE TABLE quarantined_metrics (id bigserial PRIMARY KEY, source text NOT NULL,"
            " line_number integer NOT NULL, line text NOT NULL, reason text NOT NULL,"
            " quarantined_at timestamptz NOT NULL DEFAULT now(), resolved_at timestamptz,"
            " UNIQUE (source, line_number, line))"
        )
        conn.exec_driver_sql(
            "INSERT INTO quarantined_metrics (source, line_number, line, reason)"
            " VALUES ('old', 1, 'not json', 'invalid_json: kept')"
        )
    db.init_schema(engine)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("quarantined_metrics")}
    assert {"line_truncated", "line_escaped"} <= columns
    assert sa.inspect(engine).get_unique_constraints("quarantined_metrics") == []
    huge = sent("k" * 20_000, "2025-01-15T12:00:00+00:00")
    for _ in range(2):
        assert loader.load_lines(engine, [huge], source="s" * 5_000).quarantined == 1
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, line FROM quarantined_metrics ORDER BY id"))
        assert [(r.source[:3], len(r.line)) for r in rows] == [("old", 8), ("sss", len(huge))]
