"""Aggregated usage turned into billing-API-shaped events (DESIGN.md §6)."""

import dagster as dg
import sqlalchemy as sa

import sql
from resources import WarehouseResource
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.partitions import monthly_partitions


def _period(context: dg.AssetExecutionContext) -> dict[str, object]:
    window = context.partition_time_window
    return {"period_start": window.start, "period_end": window.end}


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
def usage_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    params = _period(context)
    with warehouse.begin() as conn:
        conn.execute(sa.text(sql.read("usage_events_delete.sql")), params)
        conn.execute(sa.text(sql.read("usage_events_insert.sql")), params)
        summary = conn.execute(sa.text(sql.read("usage_events_summary.sql")), params).all()
        sample = conn.execute(sa.text(sql.read("usage_events_sample.sql")), params).one_or_none()
    metadata: dict[str, object] = {
        "events": sum(row.events for row in summary),
        "per_metric": dg.MetadataValue.json(
            {row.event_type: {"events": row.events, "total": str(row.total)} for row in summary}
        ),
    }
    if sample:
        metadata["sample_event"] = dg.MetadataValue.json(
            {
                "customer_id": sample.customer_id,
                "event_type": sample.event_type,
                "timestamp": sample.window_start.isoformat(),
                "properties": sample.properties,
            }
        )
    return dg.MaterializeResult(metadata=metadata)
