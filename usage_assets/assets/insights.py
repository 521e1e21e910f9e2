"""Insights for finance and customers: the month's projected invoices, usage forecasts and spikes.

They sit downstream of the priced usage: in a month's run of the `usage_billing` job they follow
its invoice totals, so the hourly current-month schedule refreshes them right after the month is
priced, and a projected invoice never falls below the total just billed. Their inputs are the
collectors' usage as of the pipeline clock (raw metrics that occurred later are invisible), read
once for both assets.

Alerts leave the run: a spike opens an incident (`usage_billing.incidents`) and the
`deliver_alerts` sensor posts it, so an alert webhook that fails can neither turn a month's run
red (a red run would say the month is not delivered, and the retry sensor would re-run it) nor
lose the alert (it stays due until the webhook takes it).
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

import dagster as dg

from usage_assets.assets.priced_usage import configured, invoice_totals
from usage_assets.metadata import markdown_table
from usage_assets.partitions import monthly_partitions
from usage_billing import invoices, periods, pricing, projections, spikes, usage_history
from usage_billing.collectors import collectors
from usage_billing.forecasting import MetricForecast
from usage_billing.incidents import open_incident
from usage_billing.pricing import money
from usage_billing.resources import WarehouseResource

GROUP = "insights"
SHOWN = 25  # rows of the tables shown in the UI
ALERT_DAYS = dt.timedelta(days=1)  # spikes of today and yesterday alert; older ones are history


def _usage_metadata(found: list[MetricForecast], card: pricing.RateCard) -> dict[str, object]:
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
    for f in found:
        totals[f.billable_metric][0] += f.month_to_date
        totals[f.billable_metric][1] += f.projected
        totals[f.billable_metric][2] += card.line_amount(f.billable_metric, f.projected)
    by_metric = markdown_table(
        [
            "billable metric",
            "month to date",
            "projected month end",
            "projected amount",
            "customers",
        ],
        [
            [
                metric,
                str(mtd),
                str(projected),
                money(amount),
                str(sum(f.billable_metric == metric for f in found)),
            ]
            for metric, (mtd, projected, amount) in sorted(totals.items())
        ],
    )
    return {
        "forecasts": len(found),
        "customers": len({f.customer_id for f in found}),
        "by_metric": dg.MetadataValue.md(by_metric),
        "totals": dg.MetadataValue.json(
            {
                m: {"month_to_date": str(a), "projected": str(b), "projected_amount": money(c)}
                for m, (a, b, c) in totals.items()
            }
        ),
    }


def _bounds(projection: projections.Projection) -> tuple[Decimal, Decimal]:
    """The projection's 80 % range; the total itself when it has none."""
    low, high = projection.low, projection.high
    return (projection.total if low is None else low, projection.total if high is None else high)


def _range(projection: projections.Projection) -> str:
    low, high = _bounds(projection)
    return f"{money(low)} to {money(high)}"


def _invoice_metadata(
    billed: dict[str, Decimal], projected: dict[str, projections.Projection], currency: str
) -> dict[str, object]:
    """The month's invoices: billed so far, projected with the 80 % range, largest first."""
    sums = {"billed": sum(billed.values(), Decimal(0)), "projected": Decimal(0)}
    sums.update(low=Decimal(0), high=Decimal(0))
    for p in projected.values():
        low, high = _bounds(p)
        sums["projected"] += p.total
        sums["low"] += low
        sums["high"] += high
    largest = sorted(projected.items(), key=lambda item: item[1].total, reverse=True)[:SHOWN]
    rows = [
        [customer, money(billed.get(customer, Decimal(0))), money(p.total), _range(p)]
        for customer, p in largest
    ]
    header = ["customer", f"billed so far ({currency})", "projected total", "80 % range"]
    return {
        "billed_so_far": dg.MetadataValue.text(f"{currency} {money(sums['billed'])}"),
        "projected_invoices_total": dg.MetadataValue.text(
            f"{currency} {money(sums['projected'])} (80 % range {money(sums['low'])} to "
            f"{money(sums['high'])}, the sum of the customers' ranges)"
        ),
        "largest_projected_invoices": dg.MetadataValue.md(markdown_table(header, rows)),
    }


def insights_settled(month: str, now: dt.datetime) -> dt.datetime | None:
    """When the month stopped having insights to give, if it has: once it is over, every collector
    has settled its last day and the alert window has passed, nothing is left to forecast and no
    spike of it can still alert (the CLI and the portal compute any month live, as of any time)."""
    settling = max((c.settling for c in collectors().values()), default=dt.timedelta(0))
    settled = periods.month_bounds(month)[1] + settling + ALERT_DAYS + dt.timedelta(days=1)
    return settled if now >= settled else None


def _spec(name: str, description: str) -> dg.AssetSpec:
    """An insight: monthly, downstream of the month's priced usage, in the insights group."""
    return dg.AssetSpec(
        key=dg.AssetKey([GROUP, name]),
        description=description,
        group_name=GROUP,
        partitions_def=monthly_partitions,
        deps=[invoice_totals],
        kinds={"postgres", "python"},
    )


FORECAST = _spec(
    "usage_forecast",
    "What the month's invoices will come to: each customer's month-end quantity per billable "
    "metric with an 80 % interval, as of the pipeline clock (month to date plus a robust "
    "weekly-seasonal forecast of the rest; spikes are not extrapolated), priced with the rate "
    "card into a projected invoice total and range per customer, never below what is billed "
    "already. Accuracy: docs/benchmarks.md, backtest.",
)
SPIKES = _spec(
    "usage_spikes",
    "Days of the month with anomalously high usage for the customer (at least twice its own "
    "weekday baseline and far outside its usual noise), the day under way included, judged on "
    "its pace so far. A spike of today or yesterday opens one incident per customer, metric and "
    "day; the deliver_alerts sensor posts it through the alerts resource.",
)


def _alert(spike: spikes.Spike) -> tuple[str, str, list[str]]:
    """(incident key, title, lines) of a spike's alert."""
    key = f"usage_spike:{spike.customer_id}:{spike.billable_metric}:{spike.day}"
    state = "" if spike.complete else " (day under way)"
    title = f"Usage spike: {spike.customer_id} {spike.billable_metric} on {spike.day}{state}"
    return key, title, [spikes.describe(spike)]


def _spike_metadata(found: list[spikes.Spike], recent: int, due: int) -> dict[str, object]:
    rows = [
        [
            str(s.day),
            s.customer_id,
            s.billable_metric,
            str(s.quantity),
            str(s.expected),
            f"{s.ratio:.1f}x",
            "yes" if s.complete else "no, under way",
        ]
        for s in sorted(found, key=lambda s: s.day, reverse=True)[:SHOWN]
    ]
    header = ["day", "customer", "billable metric", "usage", "expected", "ratio", "day complete"]
    return {
        "spikes": len(found),
        "recent_spikes": recent,
        "alerts_due": due,
        "latest_spikes": dg.MetadataValue.md(markdown_table(header, rows)),
    }


@dg.multi_asset(specs=[FORECAST, SPIKES], can_subset=True)
def usage_insights(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """Projected invoices, forecasts and spikes of a month from one as-of read of every
    collector's usage (the read is most of the cost)."""
    engine = warehouse.get_engine()
    month = context.partition_key
    settled = insights_settled(month, periods.now())
    if settled is not None:  # a restatement sweep or backfill of an old month: nothing to tell
        context.log.info(f"{month} settled at {settled.isoformat()}: its invoice is its outlook")
        for key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key, metadata={"settled_at": settled.isoformat()})
        return
    histories, as_of = usage_history.read_month(engine, month)
    if FORECAST.key in context.selected_asset_keys:
        card = configured(pricing.load_rate_card)
        outlooks = projections.outlooks(histories, month, as_of)
        with engine.connect() as conn:
            billed = invoices.month_totals(conn, month)
        projected = {
            customer: projections.month_projection(
                card, outlook, billed.get(customer, Decimal(0)), as_of
            )
            for customer, outlook in outlooks.items()
        }
        for customer in billed.keys() - projected.keys():  # billed, but nothing to forecast
            projected[customer] = projections.Projection(billed[customer])
        found = [f for outlook in outlooks.values() for f in outlook.forecasts.values()]
        metadata = {
            **_invoice_metadata(billed, projected, card.currency),
            **_usage_metadata(found, card),
            "as_of": as_of.isoformat(),
        }
        yield dg.MaterializeResult(asset_key=FORECAST.key, metadata=metadata)
    if SPIKES.key in context.selected_asset_keys:
        found_spikes = spikes.find_spikes(histories, month, as_of)
        recent = [s for s in found_spikes if s.day >= as_of.date() - ALERT_DAYS]
        due = 0
        for spike in recent:
            key, title, lines = _alert(spike)
            if open_incident(engine, key, title, lines):
                context.log.warning(f"alert due (the deliver_alerts sensor sends it): {title}")
                due += 1
        metadata = {**_spike_metadata(found_spikes, len(recent), due), "as_of": as_of.isoformat()}
        yield dg.MaterializeResult(asset_key=SPIKES.key, metadata=metadata)
