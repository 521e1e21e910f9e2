"""Collector assets and usage_events, materialized through Dagster against real PostgreSQL."""

import os
import subprocess
import sys
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.helpers import PROJECT_ROOT, at, sent
from usage_assets.assets.aggregated_usage import usage_asset_key, usage_assets
from usage_assets.assets.usage_events import usage_events
from usage_assets.definitions import defs
from usage_billing import collectors, db, loader
from usage_billing.resources import WarehouseResource

pytestmark = pytest.mark.integration


def _materialize(database_url: str, month: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*usage_assets, usage_events],
        partition_key=month,
        resources={"warehouse": WarehouseResource(database_url=database_url)},
    )


def _table(engine: sa.Engine, name: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY 1, 2, 3"))]


def test_every_collector_file_is_an_asset_downstream_of_raw_metrics() -> None:
    graph = defs.resolve_asset_graph()
    for metric in collectors.collectors():
        key = usage_asset_key(metric)
        assert graph.get(key).parent_keys == {dg.AssetKey("raw_metrics")}
        assert key in graph.get(dg.AssetKey("usage_events")).parent_keys
    assert (
        graph.get(dg.AssetKey("usage_events")).partitions_def.get_partition_keys()[0] == "2025-01"
    )


def test_partition_is_computed_in_sql_and_replaced_not_appended(
    engine: sa.Engine, database_url: str
) -> None:
    loader.load_lines(
        engine,
        [
            sent("a", "2025-01-31T23:00:00+00:00", "1.5"),
            sent("b", "2025-02-01T00:00:00+00:00", 2),  # next partition: untouched
            sent("c", "2025-01-02T00:00:00+00:00", 3, customer_id="cust_b"),
        ],
        source="t",
    )
    first = _materialize(database_url, "2025-01")
    assert first.success
    usage = _table(engine, "aggregated_usage")
    events = _table(engine, "usage_events")
    assert [(u[0], u[1], u[2], u[4]) for u in usage] == [
        ("events_sent", "cust_a", at("2025-01-31 00:00"), Decimal("1.5")),
        ("events_sent", "cust_b", at("2025-01-02 00:00"), Decimal("3")),
    ]
    assert {e[1]: e[5] for e in events} == {
        "cust_a": {"events_sent": "1.5"},
        "cust_b": {"events_sent": "3"},
    }
    meta = first.asset_materializations_for_node("aggregated_usage__events_sent")[0]
    assert meta.metadata["total"].value == "4.5"
    assert meta.metadata["customers"].value == 2

    second = _materialize(database_url, "2025-01")
    assert second.success
    assert _table(engine, "aggregated_usage")[0][:5] == usage[0][:5]
    assert len(_table(engine, "aggregated_usage")) == 2
    assert _table(engine, "usage_events") == events


def test_late_raw_data_changes_the_partition_on_rematerialization(
    engine: sa.Engine, database_url: str
) -> None:
    loader.load_lines(engine, [sent("a", "2025-01-10T00:00:00+00:00", 1)], source="t")
    _materialize(database_url, "2025-01")
    loader.load_lines(engine, [sent("late", "2025-01-10T05:00:00+00:00", 4)], source="t")
    _materialize(database_url, "2025-01")
    assert [u[4] for u in _table(engine, "aggregated_usage")] == [Decimal("5")]


def test_dagster_definitions_validate_with_the_repo_instance(database_url: str) -> None:
    # From the repo root with DAGSTER_HOME unset, Dagster reads ./dagster.yaml (Postgres storage).
    env = {**os.environ, "DAGSTER_PG_URL": db.with_driver(database_url, "psycopg2")}
    command = ["dagster", "definitions", "validate", "-m", "usage_assets.definitions"]
    result = subprocess.run(
        [sys.executable, "-m", *command],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr
