"""The code location: everything Dagster loads (workspace.yaml points here)."""

from __future__ import annotations

import os

import dagster as dg

from metronome_sandbox.settings import DEV_TOKEN
from resources import WarehouseResource
from resources.billing_api import DEFAULT_BASE_URL, BillingApiResource
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.raw_metrics import raw_metrics
from usage_assets.assets.reported_usage import reported_usage
from usage_assets.assets.usage_events import usage_events


def _env_or(name: str, default: str | None) -> str | dg.EnvVar | None:
    # EnvVar keeps secrets (a token, a password in a URL) out of run config and the UI.
    return dg.EnvVar(name) if os.environ.get(name) else default


defs = dg.Definitions(
    assets=[raw_metrics, *usage_assets, usage_events, reported_usage],
    resources={
        "warehouse": WarehouseResource(database_url=_env_or("USAGE_DATABASE_URL", None)),
        "billing_api": BillingApiResource(
            base_url=_env_or("METRONOME_BASE_URL", DEFAULT_BASE_URL),
            bearer_token=_env_or("METRONOME_BEARER_TOKEN", DEV_TOKEN),
        ),
    },
)
