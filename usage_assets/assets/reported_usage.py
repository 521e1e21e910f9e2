"""Usage the billing API accepted: deltas against the ledger, through the outbox, exactly once."""

import dagster as dg

from usage_assets.assets.usage_events import usage_events
from usage_assets.partitions import monthly_partitions
from usage_billing import periods, reporting
from usage_billing.billing_api import BillingApiAuthError
from usage_billing.resources import BillingApiResource, WarehouseResource


def _metadata(stats: reporting.ReportStats) -> dict[str, object]:
    left = stats.undelivered
    return {
        "sent": stats.sent,
        "retried_requests": stats.retried_requests,
        "acknowledged": stats.acknowledged,
        "dead_lettered": stats.dead_lettered,
        "not_sent": stats.not_sent,
        "requeued_dead_letters": stats.requeued,
        "skipped_unchanged": stats.skipped_unchanged,
        "planned_deltas": stats.planned,
        "dated_now_corrections": stats.corrections,
        "undelivered": left.total,
        "undelivered_pending": left.pending,
        "undelivered_dead_retryable": left.dead_retryable,
        "undelivered_dead_permanent": left.dead_permanent,
        "circuit_breaker": stats.circuit_breaker or "closed",
        "errors": dg.MetadataValue.json(stats.errors),
    }


@dg.asset(
    description=(
        "Reports the month's usage events to the billing API exactly once: the delta between "
        "`usage_events` and the ledger goes to the outbox with deterministic transaction ids, is "
        "sent in batches of 100 with retries, and is marked acknowledged; permanent failures go to "
        "the dead-letter queue. Each run first requeues the month's dead letters that died of "
        "unavailability. Windows past the 34-day backdating limit are sent dated now with "
        "`corrects_window`. A circuit breaker stops sending when the API is down. Succeeds only "
        "when every event of the month is acknowledged; otherwise fails (after recording "
        "everything) saying how many events are pending or dead, and why."
    ),
    group_name="reporting",
    partitions_def=monthly_partitions,
    deps=[usage_events],
    kinds={"postgres", "api"},
)
def reported_usage(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    billing_api: BillingApiResource,
) -> dg.MaterializeResult:
    window = context.partition_time_window
    try:
        stats = reporting.report_partition(
            warehouse.get_engine(),
            billing_api.get_client(),
            context.partition_key,
            window.start,
            window.end,
            periods.now(),
        )
    except BillingApiAuthError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    metadata = _metadata(stats)
    failure = stats.failure(context.partition_key)
    if failure:
        raise dg.Failure(description=failure, metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)
