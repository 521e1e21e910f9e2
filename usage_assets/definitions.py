"""The code location: everything Dagster loads (workspace.yaml points here)."""

from __future__ import annotations

import os

import dagster as dg

from resources import WarehouseResource
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.raw_metrics import raw_metrics
from usage_assets.assets.usage_events import usage_events


def _warehouse() -> WarehouseResource:
    # EnvVar keeps a password in the URL out of run config and the UI; unset means embedded.
    if os.environ.get("USAGE_DATABASE_URL"):
        return WarehouseResource(database_url=dg.EnvVar("USAGE_DATABASE_URL"))
    return WarehouseResource()


defs = dg.Definitions(
    assets=[raw_metrics, *usage_assets, usage_events],
    resources={"warehouse": _warehouse()},
)
