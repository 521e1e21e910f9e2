"""The CLI's materialize and usage commands on a real Dagster instance backed by PostgreSQL."""

import json
import os
import subprocess
import sys
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


DEAD = sa.text("""
WITH outbox AS (
  INSERT INTO usage_outbox (transaction_id, partition_key, event_type, customer_id, window_start,
                            revision, delta, status)
  SELECT 'tx-' || n, '2025-03', 'events_sent', 'cust_' || n, '2025-03-05T00:00:00Z', 1, n, 'dead'
  FROM generate_series(1, :letters) AS n
  RETURNING transaction_id
)
INSERT INTO dead_letters (transaction_id, status_code, message, retryable)
SELECT transaction_id, 400, 'rejected: ' || repeat('x', 60), false FROM outbox
""")


def test_dlq_list_json_has_the_contracts_shape(
    engine: sa.Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine.begin() as conn:
        conn.execute(DEAD, {"letters": 2})
    assert cli.main(["dlq", "list", "--json"]) == 0
    letters = json.loads(capsys.readouterr().out)
    assert len(letters) == 2
    contract = {"transaction_id", "partition_key", "billable_metric", "customer_id"}
    assert contract | {"status_code", "message"} <= set(letters[0])
    assert letters[0]["status_code"] == 400  # a number, as the API answered it
    assert letters[0]["billable_metric"] == "events_sent"


def test_dlq_list_into_head_ends_quietly(engine: sa.Engine, database_url: str) -> None:
    with engine.begin() as conn:
        conn.execute(DEAD, {"letters": 3000})  # far more than a pipe holds
    env = {**os.environ, "USAGE_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "usage_billing.cli", "dlq", "list"]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as listing:
        first = listing.stdout.readline()
        listing.stdout.close()  # what `| head -1` does once it has its line
        errors = listing.stderr.read()
    assert first == "3000 unresolved dead letters\n"
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
