"""Usage as the billing API itself counts it: written by the API, never materialized by Dagster."""

import dagster as dg

from usage_assets.assets.reported_usage import reported_usage

billing_api_usage = dg.AssetSpec(
    key="billing_api_usage",
    description=(
        "Usage as the billing API counts it (Metronome's `POST /v1/usage`): what it accepted from "
        "`reported_usage`, corrections (`corrects_window`) included. Not materialized here; its "
        "check `billing_api_history_reconciliation` compares every month with the ledger daily."
    ),
    group_name="billing_api",
    deps=[reported_usage],
    kinds={"api"},
)
