"""Jobs: the whole monthly pipeline, the daily history reconciliation, the dead-letter redrive."""

import dagster as dg

from usage_assets.assets.billing_api_usage import billing_api_usage
from usage_billing import periods, reporting
from usage_billing.resources import BillingApiResource, WarehouseResource

# Aggregation, usage events, reporting, pricing and the insights priced from it, one month at a
# time (partitions come from the assets; the commit burn-down, not partitioned, is refreshed by
# every run). Alerts are not sent by the run (the deliver_alerts sensor sends them).
usage_billing_job = dg.define_asset_job(
    "usage_billing",
    selection=dg.AssetSelection.groups("aggregated_usage", "reporting", "billing", "insights"),
    description="Collect, build usage events, report and price one month, then project its "
    "invoices, find its usage spikes and burn down the commits.",
)

# Only the checks of billing_api_usage (never materialized): every month against the billing API.
billing_api_history_job = dg.define_asset_job(
    "billing_api_history_reconciliation",
    selection=dg.AssetSelection.checks_for_assets(billing_api_usage.key),
    description="Reconcile every month with the billing API's own /v1/usage.",
)


@dg.op(
    description="Re-send retryable dead letters, and events left pending, with their original "
    "transaction ids; fails when any of them is still undelivered."
)
def redrive_dead_letters(
    context: dg.OpExecutionContext,
    warehouse: WarehouseResource,
    billing_api: BillingApiResource,
) -> None:
    results = reporting.redrive(
        warehouse.get_engine(), billing_api.get_client(), periods.now(), retryable_only=True
    )
    for month, stats in results.items():
        context.log.info(
            f"{month}: resent {stats.sent}, acknowledged {stats.acknowledged}, "
            f"dead again {stats.dead_lettered}, not sent {stats.not_sent}"
        )
    failed = {
        month: stats for month, stats in results.items() if stats.dead_lettered or stats.not_sent
    }
    if failed:
        raise dg.Failure(
            description="; ".join(
                f"{month}: {stats.dead_lettered} dead again, {stats.not_sent} not sent"
                + (f" ({stats.circuit_breaker})" if stats.circuit_breaker else "")
                for month, stats in failed.items()
            )
        )


@dg.job(description="Redrive the dead-letter queue once the billing API is healthy again.")
def dlq_redrive_job() -> None:
    redrive_dead_letters()
