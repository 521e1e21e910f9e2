"""Insights for finance and customers: month-end forecasts and usage spikes, as of the clock.

Both are computed from the collectors' usage as of the pipeline clock (raw metrics that occurred
later are invisible, whatever has been materialized since), so they sit downstream of the
aggregated usage in the graph, and their own job refreshes the current month every hour.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

import dagster as dg

from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.partitions import monthly_partitions
from usage_billing import forecasting, spikes, usage_history
from usage_billing.incidents import raise_incident
from usage_billing.resources import AlertsResource, WarehouseResource

GROUP = "insights"
SHOWN = 25  # rows of the tables shown in the UI
ALERT_DAYS = dt.timedelta(days=1)  # spikes of today and yesterday alert; older ones are history


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _forecast_metadata(found: list[forecasting.MetricForecast]) -> dict[str, object]:
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for f in found:
        totals[f.billable_metric][0] += f.month_to_date
        totals[f.billable_metric][1] += f.projected
    by_metric = _table(
        ["billable metric", "month to date", "projected month end", "customers"],
        [
            [metric, str(mtd), str(projected), str(sum(f.billable_metric == metric for f in found))]
            for metric, (mtd, projected) in sorted(totals.items())
        ],
    )
    growing = sorted(found, key=lambda f: f.projected - f.month_to_date, reverse=True)[:SHOWN]
    largest = _table(
        ["customer", "billable metric", "month to date", "projected", "80 % range"],
        [
            [
                f.customer_id,
                f.billable_metric,
                str(f.month_to_date),
                str(f.projected),
                f"{f.low} to {f.high}",
            ]
            for f in growing
        ],
    )
    return {
        "forecasts": len(found),
        "customers": len({f.customer_id for f in found}),
        "by_metric": dg.MetadataValue.md(by_metric),
        "largest_remaining_usage": dg.MetadataValue.md(largest),
        "totals": dg.MetadataValue.json(
            {m: {"month_to_date": str(a), "projected": str(b)} for m, (a, b) in totals.items()}
        ),
    }


def _spec(name: str, description: str) -> dg.AssetSpec:
    """An insight: monthly, downstream of every collector's usage, in the insights group."""
    return dg.AssetSpec(
        key=dg.AssetKey([GROUP, name]),
        description=description,
        group_name=GROUP,
        partitions_def=monthly_partitions,
        deps=usage_assets,
        kinds={"postgres", "python"},
    )


FORECAST = _spec(
    "usage_forecast",
    "Projected month-end usage per customer and billable metric with an 80 % interval, as of "
    "the pipeline clock: month to date plus a robust weekly-seasonal forecast of the rest of "
    "the month (spikes are not extrapolated). Accuracy: docs/benchmarks.md, backtest.",
)
SPIKES = _spec(
    "usage_spikes",
    "Days of the month with anomalously high usage for the customer (at least twice its own "
    "weekday baseline and far outside its usual noise), the day under way included, judged on "
    "its pace so far. A spike of today or yesterday alerts once through the alerts resource "
    "(one incident per customer, metric and day).",
)


def _alert(spike: spikes.Spike) -> tuple[str, str, list[str]]:
    """(incident key, title, lines) of a spike's alert."""
    key = f"usage_spike:{spike.customer_id}:{spike.billable_metric}:{spike.day}"
    state = "" if spike.complete else " (day under way)"
    title = f"Usage spike: {spike.customer_id} {spike.billable_metric} on {spike.day}{state}"
    return key, title, [spikes.describe(spike)]


def _spike_metadata(found: list[spikes.Spike], recent: int, notified: int) -> dict[str, object]:
    table = _table(
        ["day", "customer", "billable metric", "usage", "expected", "day complete"],
        [
            [
                str(s.day),
                s.customer_id,
                s.billable_metric,
                str(s.quantity),
                str(s.expected),
                "yes" if s.complete else "no, under way",
            ]
            for s in sorted(found, key=lambda s: s.day, reverse=True)[:SHOWN]
        ],
    )
    return {
        "spikes": len(found),
        "recent_spikes": recent,
        "alerts_sent": notified,
        "latest_spikes": dg.MetadataValue.md(table),
    }


@dg.multi_asset(specs=[FORECAST, SPIKES], can_subset=True)
def usage_insights(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, alerts: AlertsResource
) -> Iterator[dg.MaterializeResult]:
    """Forecasts and spikes of a month from one as-of read of every collector's usage (the
    read is most of the cost); the forecast is recorded before any spike alert is sent."""
    engine = warehouse.get_engine()
    histories, as_of = usage_history.read_month(engine, context.partition_key)
    if FORECAST.key in context.selected_asset_keys:
        found = forecasting.forecast_histories(histories, context.partition_key, as_of)
        metadata = {**_forecast_metadata(found), "as_of": as_of.isoformat()}
        yield dg.MaterializeResult(asset_key=FORECAST.key, metadata=metadata)
    if SPIKES.key in context.selected_asset_keys:
        found_spikes = spikes.find_spikes(histories, context.partition_key, as_of)
        recent = [s for s in found_spikes if s.day >= as_of.date() - ALERT_DAYS]
        notifier = alerts.get_client()
        notified = sum(raise_incident(engine, notifier, *_alert(s)) for s in recent)
        metadata = {
            **_spike_metadata(found_spikes, len(recent), notified),
            "as_of": as_of.isoformat(),
        }
        yield dg.MaterializeResult(asset_key=SPIKES.key, metadata=metadata)
