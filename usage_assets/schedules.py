"""Schedules: keep the current month fresh, close the last one, sweep restatement horizons,
reconcile every month with the billing API once a day.

All run in UTC and start RUNNING (the daemon of `usage-billing ui` or `dagster dev` evaluates them).
"""

import datetime as dt

import dagster as dg

from usage_assets.jobs import billing_api_history_job, usage_billing_job
from usage_assets.partitions import monthly_partitions
from usage_billing.collectors import collectors
from usage_billing.periods import FIRST_MONTH, month_of, previous_month


def restatement_months(moment: dt.datetime) -> list[str]:
    """Closed months that a collector's restatement horizon still reaches: their end plus the
    longest horizon is after `moment`."""
    horizon = max(c.restatement_horizon for c in collectors().values())
    current = month_of(moment)
    keys = []
    for key in monthly_partitions.get_partition_keys(current_time=moment):
        window = monthly_partitions.time_window_for_partition_key(key)
        if key < current and window.end + horizon > moment:
            keys.append(key)
    return keys


@dg.schedule(
    job=usage_billing_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: the current month's partition, so customers see fresh usage.",
)
def current_month_hourly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    month = month_of(context.scheduled_execution_time)
    return dg.RunRequest(partition_key=month, tags={"usage_billing/trigger": "current_month"})


@dg.schedule(
    job=usage_billing_job,
    cron_schedule="30 0 1,2 * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="00:30 UTC on the 1st (and again on the 2nd): close the previous month while all "
    "its days are inside the billing API's 34-day backdating limit.",
)
def monthly_close(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    month = previous_month(context.scheduled_execution_time)
    if month < FIRST_MONTH:
        return dg.SkipReason(f"{month} is before the first partition {FIRST_MONTH}")
    return dg.RunRequest(partition_key=month, tags={"usage_billing/trigger": "monthly_close"})


@dg.schedule(
    job=usage_billing_job,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="04:00 UTC daily: re-run closed months still inside a collector's restatement "
    "horizon (late fraud chargebacks, late handoffs); only deltas reach the billing API.",
)
def restatement_sweep(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    moment = context.scheduled_execution_time
    return [
        dg.RunRequest(
            partition_key=key,
            run_key=f"restatement-{key}-{moment:%Y-%m-%d}",
            tags={"usage_billing/trigger": "restatement_sweep"},
        )
        for key in restatement_months(moment)
    ]


history_reconciliation_daily = dg.ScheduleDefinition(
    name="history_reconciliation_daily",
    job=billing_api_history_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="05:00 UTC daily, after the restatement sweep: compare every month with the "
    "billing API's own /v1/usage (each run compares only its own month).",
)


schedules = [current_month_hourly, monthly_close, restatement_sweep, history_reconciliation_daily]
