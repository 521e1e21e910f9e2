"""The CLI's materialize and usage commands on a real Dagster instance backed by PostgreSQL."""

import json
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.helpers import sent
from usage_billing import cli, loader

pytestmark = pytest.mark.integration

AGGREGATION = "group:aggregated_usage or key:usage_events"  # reporting is tested with the sandbox


def test_materialize_runs_on_the_postgres_instance_and_usage_prints_it(
    engine: sa.Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    loader.load_lines(
        engine,
        [
            sent("a", "2025-03-05T10:00:00+00:00", "0.1"),
            sent("b", "2025-03-20T10:00:00+00:00", "0.2"),
            sent("c", "2025-03-20T10:00:00+00:00", 7, customer_id="cust_b"),
        ],
        source="t",
    )
    assert cli.main(["materialize", "--month", "2025-03", "--select", AGGREGATION]) == 0
    out = capsys.readouterr().out
    run_id = out.split("run ", 1)[1].split(" ", 1)[0]

    with dg.DagsterInstance.get() as instance:  # the one the CLI configured
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == "2025-03"

    assert cli.main(["usage", "--month", "2025-03", "--json"]) == 0
    usage = json.loads(capsys.readouterr().out)
    assert usage == [
        {"customer_id": "cust_a", "billable_metric": "events_sent", "value": "0.3"},
        {"customer_id": "cust_b", "billable_metric": "events_sent", "value": "7"},
    ]


def test_materialize_selection_and_bad_month(
    engine: sa.Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["materialize", "--month", "2025-03", "--select", "key:usage_events"]) == 0
    assert "SUCCESS" in capsys.readouterr().out
    for month, reason in [
        ("2019-01", "2019-01 is before the first partition, 2025-01"),
        ("2025-3", "'2025-3' is not a month written YYYY-MM"),
        ("2099-01", "2099-01 has not started yet"),
    ]:
        assert cli.main(["materialize", "--month", month]) == 2
        [line] = capsys.readouterr().err.splitlines()  # one line, never a traceback
        assert reason in line


def test_seed_is_deterministic_and_idempotent(engine: sa.Engine, tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert cli.main(["seed", "--month", "2025-01", "--customers", "3", "--jsonl", str(first)]) == 0
    assert cli.main(["seed", "--month", "2025-01", "--customers", "3", "--jsonl", str(second)]) == 0
    assert first.read_text() == second.read_text()
    lines = first.read_text().splitlines()
    documents = [d for d in map(json.loads, lines) if d["metric"] == "events_sent"]
    environments = {d["properties"]["environment_type"] for d in documents}
    assert environments == {"PRODUCTION", "STAGING", "DEVELOPMENT"}
    assert any(d["properties"].get("is_duplicate") is True for d in documents)
    loaded = loader.load_file(engine, first)
    assert loaded.quarantined == 0 and loaded.loaded == len(set(lines))
    assert loader.load_file(engine, first).loaded == 0
