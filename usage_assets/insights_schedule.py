"""The insights' own job and schedule: the current month's forecasts and spikes, every hour.

They run apart from the billing job, so a spike alert that cannot be delivered never turns a
reporting run red, and a restatement of an old month does not recompute them.
"""

import dagster as dg

from usage_assets.assets.insights import GROUP
from usage_billing.periods import month_of

insights_job = dg.define_asset_job(
    "insights",
    selection=dg.AssetSelection.groups(GROUP),
    description="Forecasts and spike notices of one month, as of the pipeline clock.",
)


@dg.schedule(
    job=insights_job,
    cron_schedule="20 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly, after the current month's usage run: refresh its forecasts and spikes, "
    "so a spike that started overnight reaches the team the same morning.",
)
def insights_hourly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    month = month_of(context.scheduled_execution_time)
    return dg.RunRequest(partition_key=month, tags={"usage_billing/trigger": "insights_hourly"})
