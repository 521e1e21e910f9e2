"""The raw metrics store: written by product services and `usage-billing load`, not by Dagster."""

import dagster as dg

raw_metrics = dg.AssetSpec(
    key="raw_metrics",
    description=(
        "Raw product metrics (table `raw_metrics`): one row per producer event, "
        "idempotent on `event_id`. Loaded by services or `usage-billing load`; never updated."
    ),
    group_name="raw",
    kinds={"postgres"},
)
