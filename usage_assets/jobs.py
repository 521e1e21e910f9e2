"""Jobs: the whole monthly pipeline, and the dead-letter redrive."""

import dagster as dg

from usage_billing import periods, reporting
from usage_billing.resources import BillingApiResource, WarehouseResource

# Aggregation, usage events and reporting, one month at a time (partitions come from the assets).
usage_billing_job = dg.define_asset_job(
    "usage_billing",
    selection=dg.AssetSelection.groups("aggregated_usage", "reporting"),
    description="Collect, build usage events and report one month.",
)


@dg.op(description="Re-send retryable dead letters with their original transaction ids.")
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
            f"dead again {stats.dead_lettered}"
        )


@dg.job(description="Redrive the dead-letter queue once the billing API is healthy again.")
def dlq_redrive_job() -> None:
    redrive_dead_letters()
