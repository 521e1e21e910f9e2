"""Asset checks: reporting gaps, reconciliation with the billing API, raw-data gaps, invalid values.

Every failed check says exactly which customers, metrics and days are affected (metadata `problems`,
the first 50 of them, and their count). Checks that run inside a partition's run (invalid values,
raw-data gaps, the month's reconciliation with the billing API) look at that partition; reporting
gaps look at every partition, and the daily history reconciliation at every month.
"""

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import dagster as dg
import sqlalchemy as sa

from usage_assets.assets.aggregated_usage import usage_asset_key
from usage_assets.assets.billing_api_usage import billing_api_usage
from usage_assets.assets.reported_usage import reported_usage
from usage_assets.assets.usage_events import usage_events
from usage_assets.partitions import monthly_partitions
from usage_billing import periods, reconcile, reporting, sql
from usage_billing.collectors import Collector, collectors
from usage_billing.resources import BillingApiResource, WarehouseResource

SHOWN = 50
# A raw metric "normally has data" when at least this share of the window's days have rows.
NORMAL_DAYS_SHARE = 0.5
RAW_GAP_LOOKBACK = dt.timedelta(days=28)

# Ledger keys whose committed usage the billing API has not (fully) acknowledged.
_UNACKNOWLEDGED = sa.text("""
SELECT event_type AS metric, customer_id,
       to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
       committed - acknowledged AS outstanding
FROM usage_ledger
WHERE committed <> acknowledged
ORDER BY window_start, event_type, customer_id
""")
# Outbox events planned but not acknowledged yet (a run crashed, or stopped on an auth error):
# the next reporting run sends them with the same transaction ids.
_PENDING_OUTBOX = sa.text("""
SELECT partition_key, event_type AS metric, customer_id,
       to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, created_at
FROM usage_outbox
WHERE status = 'pending'
ORDER BY created_at, transaction_id
""")
_MONTH_HAS_RAW_DATA = sa.text("""
SELECT EXISTS (
  SELECT 1 FROM raw_metrics
  WHERE metric = ANY(:metrics) AND occurred_at >= :period_start AND occurred_at < :period_end)
""")
_MONTH_REPORTED = sa.text("""
SELECT EXISTS (
  SELECT 1 FROM usage_ledger WHERE window_start >= :period_start AND window_start < :period_end)
""")
# Whether each UTC day of [period_start, period_end) has raw rows of some raw metrics: one index
# probe per day (raw_metrics_metric_occurred_idx), not a count of the month's rows.
_RAW_DAYS = sa.text("""
SELECT d.day::date AS day,
       EXISTS (SELECT 1 FROM raw_metrics
               WHERE metric = ANY(:metrics)
                 AND occurred_at >= d.day AND occurred_at < d.day + interval '1 day') AS has_rows
FROM generate_series(:period_start, :period_end - interval '1 day', interval '1 day') AS d(day)
ORDER BY 1
""")


def _json_ready(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _problems(rows: Iterable[Any]) -> list[dict[str, Any]]:
    return [{k: _json_ready(v) for k, v in row._mapping.items()} for row in rows]


def result(
    findings: dict[str, Sequence[dict[str, Any]]],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    **extra: Any,
) -> dg.AssetCheckResult:
    """Pass when every finding list is empty; otherwise list them (capped) in metadata."""
    metadata: dict[str, Any] = dict(extra)
    for name, problems in findings.items():
        metadata[f"{name}_count"] = len(problems)
        if problems:
            metadata[name] = dg.MetadataValue.json(list(problems[:SHOWN]))
    passed = not any(findings.values())
    return dg.AssetCheckResult(passed=passed, severity=severity, metadata=metadata)


def _closed_months(now: dt.datetime) -> list[str]:
    current = periods.month_of(now)
    return [key for key in monthly_partitions.get_partition_keys() if key < current]


def _never_reported(conn: sa.Connection, now: dt.datetime) -> list[dict[str, Any]]:
    metrics = sorted({raw.name for c in collectors().values() for raw in c.raw_metrics})
    missing = []
    for month in _closed_months(now):
        start, end = periods.month_bounds(month)
        params = {"period_start": start, "period_end": end, "metrics": metrics}
        has_data = conn.execute(_MONTH_HAS_RAW_DATA, params).scalar()
        if has_data and not conn.execute(_MONTH_REPORTED, params).scalar():
            missing.append({"month": month, "problem": "raw metrics but nothing reported"})
    return missing


@dg.asset_check(
    asset=reported_usage,
    description="Every closed month is fully reported and "
    "acknowledged: no unacknowledged ledger amounts, pending outbox events, dead "
    "letters, unreported truth, or months with raw data that were never reported.",
)
def reporting_gaps(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    now = periods.now()
    month_start = periods.month_bounds(periods.month_of(now))[0]
    engine = warehouse.get_engine()
    with engine.begin() as conn:
        findings = {
            "unacknowledged": _problems(conn.execute(_UNACKNOWLEDGED)),
            "pending_outbox": _problems(conn.execute(_PENDING_OUTBOX)),
            "dead_letters": _problems(reporting.dead_letters(engine)),
            "unreported": _problems(sql.execute(conn, "check_unreported.sql", before=month_start)),
            "months_never_reported": _never_reported(conn, now),
        }
    return result(findings)


def _reconciliation(
    warehouse: WarehouseResource,
    billing_api: BillingApiResource,
    months: list[str],
    now: dt.datetime,
) -> dg.AssetCheckResult:
    found, compared = reconcile.mismatches(
        warehouse.get_engine(), billing_api.get_client(), months, now
    )
    return result(
        {"mismatches": [mismatch.to_json() for mismatch in found]},
        compared=compared,
        months=dg.MetadataValue.json(months),
    )


@dg.asset_check(
    asset=reported_usage,
    description="For the run's month (the current month outside a partition's run): the billing "
    "API's own /v1/usage equals the ledger's acknowledged usage, per customer and billable "
    "metric; corrections dated later count for the window they correct. One query over every "
    "metric, paged; all months are compared daily by billing_api_history_reconciliation.",
)
def billing_api_reconciliation(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    billing_api: BillingApiResource,
) -> dg.AssetCheckResult:
    now = periods.now()
    month = context.partition_key if context.has_partition_key else periods.month_of(now)
    return _reconciliation(warehouse, billing_api, [month], now)


@dg.asset_check(
    asset=billing_api_usage.key,
    description="Daily, every month from the first partition on: the billing API's own /v1/usage "
    "equals the ledger's acknowledged usage, per month, customer and billable metric, corrections "
    "counted for the window they correct. One query per month over every metric, paged; runs in "
    "its own job, never inside a partition's run.",
)
def billing_api_history_reconciliation(
    warehouse: WarehouseResource, billing_api: BillingApiResource
) -> dg.AssetCheckResult:
    now = periods.now()
    return _reconciliation(warehouse, billing_api, periods.partition_months(now), now)


@dg.asset_check(
    asset=usage_events,
    blocking=True,
    description="Blocks reporting of usage that "
    "must not be billed: negative usage, or customers the registry does not know.",
)
def invalid_values(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    query = sql.read("check_invalid_values.sql")
    params: dict[str, Any] = {}
    if context.has_partition_key:  # inside a partition's run: that partition only
        window = context.partition_time_window
        query = f"SELECT * FROM ({query}) AS all_months WHERE day >= :first_day AND day < :end_day"
        params = {"first_day": f"{window.start:%Y-%m-%d}", "end_day": f"{window.end:%Y-%m-%d}"}
    with warehouse.get_engine().begin() as conn:
        return result({"invalid": _problems(conn.execute(sa.text(query), params))})


def _raw_gap_window(context: dg.AssetCheckExecutionContext) -> tuple[dt.datetime, dt.datetime]:
    today = periods.day_start(periods.now())
    if context.has_partition_key:
        window = context.partition_time_window
        return window.start, min(window.end, today)
    return today - RAW_GAP_LOOKBACK, today


def build_raw_data_gap_check(collector: Collector) -> dg.AssetChecksDefinition:
    """WARN when a day has no raw metrics for this collector while most days have them."""
    metrics = collector.raw_metric_names

    @dg.asset_check(
        asset=usage_asset_key(collector.billable_metric),
        name="raw_data_gaps",
        description=f"Days without raw {', '.join(metrics)} while most days have them (a broken "
        "producer or a lost load), as a warning.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        start, end = _raw_gap_window(context)
        if end <= start:
            return result({"empty_days": []}, dg.AssetCheckSeverity.WARN)
        params = {"metrics": metrics, "period_start": start, "period_end": end}
        with warehouse.get_engine().begin() as conn:
            days = conn.execute(_RAW_DAYS, params).all()
        with_data = sum(1 for day in days if day.has_rows)
        normal = days and with_data / len(days) >= NORMAL_DAYS_SHARE
        empty = [
            {"metric": collector.billable_metric, "day": str(d.day)} for d in days if not d.has_rows
        ]
        return result(
            {"empty_days": empty if normal else []},
            dg.AssetCheckSeverity.WARN,
            days_with_data=with_data,
            days=len(days),
        )

    return _check


checks = [
    reporting_gaps,
    billing_api_reconciliation,
    billing_api_history_reconciliation,
    invalid_values,
    *(build_raw_data_gap_check(c) for c in collectors().values()),
]
