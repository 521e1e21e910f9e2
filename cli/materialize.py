"""Run a month's partition through Dagster on the configured instance, as the UI would."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from usage_assets import runs
from usage_billing.cli import instance
from usage_billing.cli.common import UsageError
from usage_billing.periods import MonthError


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    failed_steps: tuple[str, ...]


def materialize(month: str, select: str | None = None, log_level: str = "INFO") -> RunOutcome:
    """Execute the selected assets (all by default) for partition `month` under the asset job.

    The run is tagged with this process (host, pid, start time); runs of earlier processes on this
    host that died mid-run are marked failed first, so they stop holding their months."""
    dagster_instance = instance.get_instance()
    for orphan in runs.fail_orphaned_runs(dagster_instance):
        partition = orphan.tags.get("dagster/partition", "?")
        print(f"run {orphan.run_id} for {partition}: marked FAILURE (its process was killed)")
    from usage_assets.definitions import defs  # after prepare(): the resources read the env

    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    if month not in job.partitions_def.get_partition_keys(dynamic_partitions_store=None):
        raise MonthError(f"no partition {month}: months run from the first partition to now")
    try:
        selection = dg.AssetSelection.from_string(select) if select else dg.AssetSelection.all()
        keys = sorted(selection.resolve(graph) & graph.materializable_asset_keys)
    except (dg.DagsterInvalidSubsetError, dg.DagsterInvalidDefinitionError, ValueError) as error:
        raise UsageError(f"selection {select!r}: {error}") from None
    if not keys:
        raise UsageError(f"selection {select!r} matches no materializable asset")
    result = job.execute_in_process(
        instance=dagster_instance,
        partition_key=month,
        asset_selection=keys,
        raise_on_error=False,
        tags=runs.process_tags(),
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    failed = tuple(
        event.step_key or ""
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    )
    return RunOutcome(run_id=result.run_id, success=result.success, failed_steps=failed)
