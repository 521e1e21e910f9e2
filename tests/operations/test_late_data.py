"""The late-data sensor against real PostgreSQL transactions: nothing committed is ever skipped."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.helpers import sent
from usage_assets.sensors import late_raw_data
from usage_billing import db, loader
from usage_billing.resources import WarehouseResource

pytestmark = pytest.mark.integration

# What a producer service writing straight into the store sends (received_at and loaded_xid are
# the table's defaults).
_PRODUCER_INSERT = sa.text(
    "INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, value, properties)"
    " VALUES (:event_id, 'cust_a', 'events_sent', :occurred_at, 1, CAST(:properties AS jsonb))"
)
_PROPERTIES = json.dumps({"environment_type": "PRODUCTION", "is_duplicate": False})


def _reported(engine: sa.Engine, *months: str) -> None:
    """Mark months as already reported (an outbox row each), as a reporting run leaves them."""
    with engine.begin() as conn:
        for month in months:
            conn.execute(
                sa.text(
                    "INSERT INTO usage_outbox (transaction_id, partition_key, event_type,"
                    " customer_id, window_start, revision, delta)"
                    " VALUES (:id, :month, 'events_sent', 'c', CAST(:month || '-03' AS date), 1, 1)"
                ),
                {"id": f"t-{month}", "month": month},
            )


def _produce(conn: sa.Connection, event_id: str, occurred_at: str) -> None:
    conn.execute(
        _PRODUCER_INSERT,
        {"event_id": event_id, "occurred_at": occurred_at, "properties": _PROPERTIES},
    )


@pytest.fixture
def sensor_context(database_url: str) -> dg.SensorEvaluationContext:
    context = dg.build_sensor_context(
        resources={"warehouse": WarehouseResource(database_url=database_url)}
    )
    [first] = late_raw_data(context)
    assert isinstance(first, dg.SkipReason)  # starts watching from now
    return context


def test_late_data_requests_only_reported_months(
    engine: sa.Engine, sensor_context: dg.SensorEvaluationContext
) -> None:
    _reported(engine, "2025-02")
    late = [
        sent("late-feb", "2025-02-10T00:00:00+00:00", 1),  # reported month: re-run it
        sent("late-mar", "2025-03-10T00:00:00+00:00", 1),  # never reported: schedules cover it
    ]
    loader.load_lines(engine, late, source="late")
    requests = list(late_raw_data(sensor_context))
    assert [r.partition_key for r in requests] == ["2025-02"]
    assert requests[0].tags["usage_billing/late_rows"] == "1"
    assert list(late_raw_data(sensor_context)) == []  # the cursor moved on


def test_a_row_committed_after_a_later_started_transaction_is_not_skipped(
    engine: sa.Engine, database_url: str, sensor_context: dg.SensorEvaluationContext
) -> None:
    """Writer A starts first and commits last: its row's received_at (A's start) is older than
    writer B's, which the sensor has already seen by the time A commits."""
    _reported(engine, "2025-02")
    slow_writer = db.create_engine(database_url)
    try:
        with slow_writer.connect() as slow:
            slow_transaction = slow.begin()
            _produce(slow, "slow", "2025-02-11T00:00:00+00:00")
            with engine.begin() as fast:
                _produce(fast, "fast", "2025-02-12T00:00:00+00:00")

            [first] = late_raw_data(sensor_context)  # A still open: invisible, not lost
            assert first.partition_key == "2025-02"
            assert first.tags["usage_billing/late_rows"] == "1"
            slow_transaction.commit()

        [second] = late_raw_data(sensor_context)
        assert second.partition_key == "2025-02"
        assert second.tags["usage_billing/late_rows"] == "1"
        # Dagster launches a run_key once: the second arrival must not reuse the first's key.
        assert second.run_key != first.run_key
        assert list(late_raw_data(sensor_context)) == []
    finally:
        slow_writer.dispose()

    with engine.connect() as conn:
        received = dict(
            conn.execute(sa.text("SELECT event_id, received_at FROM raw_metrics")).all()
        )
    assert received["slow"] < received["fast"]  # the order that fooled a received_at cursor


def test_a_rolled_back_transaction_requests_nothing(
    engine: sa.Engine, sensor_context: dg.SensorEvaluationContext
) -> None:
    _reported(engine, "2025-02")
    with engine.connect() as conn:
        transaction = conn.begin()
        _produce(conn, "aborted", "2025-02-11T00:00:00+00:00")
        assert list(late_raw_data(sensor_context)) == []
        transaction.rollback()
    assert list(late_raw_data(sensor_context)) == []


def test_a_cursor_from_before_the_transaction_column_is_honoured_once(
    engine: sa.Engine, database_url: str
) -> None:
    """A sensor cursor written by the received_at version (a timestamp) still finds what arrived
    after it, then continues with snapshots."""
    _reported(engine, "2025-02")
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT now()")).scalar_one()
    loader.load_lines(engine, [sent("after", "2025-02-10T00:00:00+00:00", 1)], source="t")
    context = dg.build_sensor_context(
        cursor=before.isoformat(),
        resources={"warehouse": WarehouseResource(database_url=database_url)},
    )
    [request] = late_raw_data(context)
    assert request.partition_key == "2025-02"
    assert ":" in context.cursor and "T" not in context.cursor  # now a snapshot
    assert list(late_raw_data(context)) == []


def test_rows_stored_before_the_migration_are_not_late(engine: sa.Engine) -> None:
    """`db init` on a store created before loaded_xid: old rows get xid 0 (older than any
    snapshot) without a table rewrite; new rows get their transaction's id."""
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX raw_metrics_loaded_xid_idx"))
        conn.execute(sa.text("ALTER TABLE raw_metrics DROP COLUMN loaded_xid"))
        _produce(conn, "old", "2025-02-10T00:00:00+00:00")
    db.init_schema(engine)
    db.init_schema(engine)  # idempotent
    with engine.begin() as conn:
        _produce(conn, "new", "2025-02-10T00:00:00+00:00")
        xids = dict(
            conn.execute(sa.text("SELECT event_id, loaded_xid::text FROM raw_metrics")).all()
        )
    assert xids["old"] == "0" and int(xids["new"]) > 0
