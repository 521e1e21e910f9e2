"""The shipped dagster.yaml, as the instance loads it."""

from __future__ import annotations

import dagster as dg
import pytest

pytestmark = pytest.mark.integration


def test_runs_end_one_per_month_at_a_time(dagster_instance: dg.DagsterInstance) -> None:
    """Run monitoring fails runs that never start or never end (a dead worker, a hang), so no run
    holds its month forever; the partition limit queues a second run of a month."""
    assert type(dagster_instance.run_storage).__name__ == "PostgresRunStorage"
    assert dagster_instance.run_monitoring_enabled
    assert 0 < dagster_instance.run_monitoring_start_timeout_seconds <= 300
    assert 0 < dagster_instance.run_monitoring_max_runtime_seconds <= 6 * 3600
    limits = dagster_instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {
        "key": "dagster/partition",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in (limits)
