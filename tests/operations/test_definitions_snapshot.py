"""The shape of the code location, against a checked-in snapshot (`definitions.snapshot.json`).

A change to the asset graph, the partitions, the jobs, the schedules, the sensors or the checks
shows up as a diff of that file in review. When the change is intended, rewrite the snapshot and
commit it with the change:

    UPDATE_SNAPSHOT=1 .venv/bin/pytest tests/operations/test_definitions_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from usage_assets.definitions import defs

pytestmark = pytest.mark.unit

SNAPSHOT = Path(__file__).with_name("definitions.snapshot.json")
UPDATE_COMMAND = "UPDATE_SNAPSHOT=1 .venv/bin/pytest tests/operations/test_definitions_snapshot.py"


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    """One line: the partitioning's kind and every parameter that moves its keys."""
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return (
            f"{type(partitions_def).__name__}"
            f"(start={partitions_def.start.strftime(partitions_def.fmt)}, "
            f"fmt={partitions_def.fmt}, cron={partitions_def.cron_schedule!r}, "
            f"timezone={partitions_def.timezone}, end_offset={partitions_def.end_offset})"
        )
    return None if partitions_def is None else f"{type(partitions_def).__name__}({partitions_def})"


def _key(key: dg.AssetKey) -> str:
    return key.to_user_string()


def definitions_shape(definitions: dg.Definitions) -> dict[str, Any]:
    """Everything a reviewer should see change, as sorted JSON-ready data (no descriptions)."""
    repository = definitions.get_repository_def()
    graph = repository.asset_graph
    assets = {
        _key(key): {
            "group": node.group_name,
            "materializable": node.is_materializable,
            "kinds": sorted(node.kinds),
            "deps": sorted(_key(parent) for parent in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
        }
        for key in sorted(graph.get_all_asset_keys())
        for node in [graph.get(key)]
    }
    checks = {
        f"{_key(key.asset_key)}:{key.name}": {
            "blocking": graph.get(key).blocking,
            "partitions": _partitions(graph.get(key).partitions_def),
        }
        for key in sorted(graph.asset_check_keys)
    }
    jobs = {}
    for job in sorted(repository.get_all_jobs(), key=lambda job: job.name):
        executable = job.asset_layer.executable_asset_keys
        jobs[job.name] = (
            {"assets": sorted(_key(key) for key in executable)}
            if executable
            else {"ops": sorted(node.name for node in job.graph.nodes)}
        )
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "timezone": schedule.execution_timezone,
            "job": schedule.job_name,
            "default_status": schedule.default_status.value,
        }
        for schedule in sorted(repository.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        sensor.name: {
            "jobs": sorted(target.job_name for target in sensor.targets),
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "default_status": sensor.default_status.value,
            "resources": sorted(sensor.required_resource_keys),
        }
        for sensor in sorted(repository.sensor_defs, key=lambda s: s.name)
    }
    return {
        "assets": assets,
        "checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(repository.get_top_level_resources()),
    }


def test_the_definitions_match_the_snapshot() -> None:
    current = json.dumps(definitions_shape(defs), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(current)
    recorded = SNAPSHOT.read_text() if SNAPSHOT.exists() else "(no snapshot yet)"
    assert current == recorded, (
        f"The definitions changed shape; if that is intended, run `{UPDATE_COMMAND}` "
        "and commit the snapshot with the change."
    )
