"""One monthly-partitioned asset per collector file in `sql/collectors/`."""

import dagster as dg

from usage_assets.assets.raw_metrics import raw_metrics
from usage_assets.partitions import monthly_partitions
from usage_billing import periods
from usage_billing.collectors import Collector, collectors, replace_partition
from usage_billing.resources import WarehouseResource

GROUP = "aggregated_usage"
# A run tagged `usage_billing/recompute: all` recomputes every partition it touches even when
# nothing its collector reads has changed (e.g. after raw rows were deleted by hand).
RECOMPUTE_TAG = "usage_billing/recompute"


def usage_asset_key(billable_metric: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, billable_metric])


def build_usage_asset(collector: Collector) -> dg.AssetsDefinition:
    """Asset that recomputes a month of `collector` inside PostgreSQL and replaces its rows, or
    keeps them when nothing the collector reads has changed since."""

    @dg.asset(
        key=usage_asset_key(collector.billable_metric),
        description=collector.description,
        group_name=GROUP,
        partitions_def=monthly_partitions,
        deps=[raw_metrics],
        kinds={"postgres", "sql"},
        metadata={
            "collector": f"sql/collectors/{collector.file_name}",
            "restatement_horizon_days": collector.restatement_horizon.days,
        },
    )
    def _usage(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        window = context.partition_time_window
        as_of = periods.now()
        force = context.run.tags.get(RECOMPUTE_TAG) == "all"
        with warehouse.get_engine().begin() as conn:
            summary = replace_partition(
                conn, collector, window.start, window.end, as_of, force=force
            )
        context.log.info(f"{'recomputed' if summary.recomputed else 'kept'}: {summary.reason}")
        return dg.MaterializeResult(
            metadata={
                "recomputed": summary.recomputed,
                "reason": summary.reason,
                "rows": summary.rows,
                "customers": summary.customers,
                "total": dg.MetadataValue.text(str(summary.total)),  # text: exact, never a float
                "window_start": window.start.isoformat(),
                "window_end": window.end.isoformat(),
                "as_of": as_of.isoformat(),
            }
        )

    return _usage


usage_assets = [build_usage_asset(collector) for collector in collectors().values()]
