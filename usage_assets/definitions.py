"""The code location: everything Dagster loads (workspace.yaml points here).

Loading it checks the configuration first: a setting that cannot work stops the load with one line
naming the variable (docs/architecture.md, "Configuration").
"""

from __future__ import annotations

import os

import dagster as dg

from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.billing_api_usage import billing_api_usage
from usage_assets.assets.insights import usage_insights
from usage_assets.assets.priced_usage import pricing_assets, pricing_checks
from usage_assets.assets.raw_metrics import raw_metrics
from usage_assets.assets.reported_usage import reported_usage
from usage_assets.assets.usage_events import usage_events
from usage_assets.checks import checks
from usage_assets.jobs import billing_api_history_job, dlq_redrive_job, usage_billing_job
from usage_assets.schedules import schedules
from usage_assets.sensors import (
    build_check_alert_sensor,
    deliver_alerts,
    late_raw_data,
    redrive_when_healthy,
    retry_failed_partitions,
)
from usage_billing import config
from usage_billing.resources import AlertsResource, BillingApiResource, WarehouseResource

config.check()


def _env_or(name: str, default: str | None) -> str | dg.EnvVar | None:
    # EnvVar keeps secrets (a token, a password in a URL) out of run config and the UI.
    return dg.EnvVar(name) if os.environ.get(name) else default


defs = dg.Definitions(
    # Each step is one SQL statement or one send loop: a process per step would cost more than it.
    executor=dg.in_process_executor,
    assets=[
        raw_metrics,
        *usage_assets,
        usage_events,
        reported_usage,
        *pricing_assets,
        billing_api_usage,
        usage_insights,
    ],
    asset_checks=[*checks, *pricing_checks],
    jobs=[usage_billing_job, billing_api_history_job, dlq_redrive_job],
    schedules=schedules,
    sensors=[
        retry_failed_partitions,
        redrive_when_healthy,
        late_raw_data,
        build_check_alert_sensor(
            [key for check in [*checks, *pricing_checks] for key in check.check_keys]
        ),
        deliver_alerts,
    ],
    resources={
        "warehouse": WarehouseResource(database_url=_env_or("USAGE_DATABASE_URL", None)),
        "billing_api": BillingApiResource(
            base_url=_env_or("METRONOME_BASE_URL", None),
            bearer_token=_env_or("METRONOME_BEARER_TOKEN", None),
        ),
        "alerts": AlertsResource(webhook_url=_env_or("USAGE_ALERTS_WEBHOOK_URL", None)),
    },
)
