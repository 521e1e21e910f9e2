"""Aggregated usage turned into billing-API-shaped events."""

import dagster as dg

from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.partitions import monthly_partitions
from usage_billing import usage_events as events
from usage_billing.resources import WarehouseResource


@dg.asset(
    description=(
        "Every collector's aggregated usage for the month as usage events: event_type = billable "
        "metric, timestamp = window start, quantity in properties[<metric>] as a decimal string. "
        "Transaction ids are assigned by `reported_usage`, per delta."
    ),
    group_name="reporting",
    partitions_def=monthly_partitions,
    deps=usage_assets,
    kinds={"postgres", "sql"},
)
def usage_events(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    window = context.partition_time_window
    with warehouse.get_engine().begin() as conn:
        summary = events.replace_partition(conn, window.start, window.end)
    metadata: dict[str, object] = {
        "events": summary.events,
        "per_metric": dg.MetadataValue.json(
            {
                event_type: {"events": count, "total": str(total)}
                for event_type, (count, total) in summary.per_type.items()
            }
        ),
    }
    if summary.sample:
        metadata["sample_event"] = dg.MetadataValue.json(summary.sample)
    return dg.MaterializeResult(metadata=metadata)
