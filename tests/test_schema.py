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
