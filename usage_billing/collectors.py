"""Collectors: one `sql/collectors/<billable_metric>.sql` file each, with its metadata in a header.

A collector file starts with `-- key: value` lines, then one SELECT returning
`(customer_id text, window_start timestamptz, groups jsonb, value numeric)` for the half-open period
`[:period_start, :period_end)`; `:as_of` is the pipeline clock (for settlement rules). Header keys:

    -- billable_metric: fin_resolutions    (required; also the reported event_type)
    -- description: ...                     (required; shown in the Dagster UI)
    -- raw_metric: support_event(ticket_id) (one per raw metric read: what the loader accepts)
    -- restatement_horizon_days: 3          (how long after a period its value may still change)
    -- settles_after_hours: 24              (optional: a day's value is known only this long
                                             after the day, e.g. a 24 h handoff window)

A `raw_metric` declaration is `name(property, ...)`, optionally followed by `signed`:

    -- raw_metric: transaction_decision(order_id, decision, amount?: decimal)

- `order_id`: a required property (present, not null; a string, number or boolean of at most
  256 characters, since collectors index it);
- `amount: decimal` / `amount?: decimal`: a required / optional decimal (a JSON number or a
  string in JSON's number grammar), so the collector's `::numeric` cast cannot fail;
- `signed`: the raw `value` and the decimal properties may be negative. Without it the loader
  quarantines a negative number: a raw quantity that reduces a bill must be declared.

The loader takes, per raw metric, the union over the collectors that read it (a property one of
them requires is required), and negatives only when every reader declares `signed`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from usage_billing import db, sql

COLLECTOR_WORK_MEM = "256MB"
# Replace a partition: first drop the metric's rows whose window starts inside the period...
_DELETE = sa.text("""
DELETE FROM aggregated_usage
WHERE billable_metric = :billable_metric
  AND window_start >= :period_start AND window_start < :period_end
""")
# ...and, once recomputed, say what it holds (asset metadata).
_SUMMARY = sa.text("""
SELECT count(*) AS rows, count(DISTINCT customer_id) AS customers, coalesce(sum(value), 0) AS total
FROM aggregated_usage
WHERE billable_metric = :billable_metric
  AND window_start >= :period_start AND window_start < :period_end
""")
_HEADER = re.compile(r"^--\s*([a-z_]+):\s*(.+?)\s*$")
_RAW_METRIC = re.compile(r"^([a-z][a-z0-9_]*)\s*(?:\(([^)]*)\))?\s*(signed)?$")
_PROPERTY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\?)?\s*(?::\s*([a-z]+))?$")
PROPERTY_TYPES = ("decimal",)


class CollectorDefinitionError(ValueError):
    """A collector file's header is missing or malformed."""


@dataclass(frozen=True)
class RawMetric:
    """A raw metric the loader accepts: the properties every line of it must carry, those that
    must be decimals when present, and whether its numbers may be negative."""

    name: str
    required_properties: tuple[str, ...]
    decimal_properties: tuple[str, ...] = ()
    signed: bool = False


@dataclass(frozen=True)
class Collector:
    """A billable metric computed by one SQL file."""

    billable_metric: str
    description: str
    raw_metrics: tuple[RawMetric, ...]
    restatement_horizon: dt.timedelta
    sql: str
    file_name: str
    settling: dt.timedelta = dt.timedelta(0)  # a day's value is known this long after its end


def parse(file_name: str, text: str) -> Collector:
    """Build a Collector from a collector file's text."""
    header: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            header.setdefault(match.group(1), []).append(match.group(2))
        elif line.strip() and not line.startswith("--"):
            break

    def one(key: str) -> str:
        values = header.get(key)
        if not values or len(values) != 1:
            raise CollectorDefinitionError(f"{file_name}: needs exactly one '-- {key}:' line")
        return values[0]

    raw_metrics = [_raw_metric(file_name, d) for d in header.get("raw_metric", [])]
    if not raw_metrics:
        raise CollectorDefinitionError(f"{file_name}: declare at least one '-- raw_metric:'")
    return Collector(
        billable_metric=one("billable_metric"),
        description=one("description"),
        raw_metrics=tuple(raw_metrics),
        restatement_horizon=dt.timedelta(days=int(one("restatement_horizon_days"))),
        sql=text,
        file_name=file_name,
        settling=dt.timedelta(hours=int(header.get("settles_after_hours", ["0"])[0])),
    )


def _raw_metric(file_name: str, declaration: str) -> RawMetric:
    """A `name(property, property: decimal, property?: decimal) [signed]` declaration."""
    match = _RAW_METRIC.match(declaration)
    if not match:
        raise CollectorDefinitionError(f"{file_name}: bad raw_metric {declaration!r}")
    required, decimal = [], []
    for item in filter(None, (p.strip() for p in (match.group(2) or "").split(","))):
        prop = _PROPERTY.match(item)
        name, optional, kind = prop.groups() if prop else (None, None, None)
        if name is None or (kind and kind not in PROPERTY_TYPES):
            raise CollectorDefinitionError(f"{file_name}: bad property {item!r} in {declaration!r}")
        if optional and not kind:
            raise CollectorDefinitionError(f"{file_name}: optional {name!r} needs a type")
        if not optional:
            required.append(name)
        if kind == "decimal":
            decimal.append(name)
    return RawMetric(match.group(1), tuple(required), tuple(decimal), bool(match.group(3)))


@functools.cache
def collectors() -> dict[str, Collector]:
    """Every collector in `sql/collectors/`, by billable metric, in a stable order."""
    found: dict[str, Collector] = {}
    for path in sorted((sql.SQL_DIR / "collectors").glob("*.sql")):
        collector = parse(path.name, path.read_text())
        if collector.billable_metric in found:
            raise CollectorDefinitionError(
                f"{path.name}: {collector.billable_metric} defined twice"
            )
        found[collector.billable_metric] = collector
    return found


@functools.cache
def raw_metrics() -> dict[str, RawMetric]:
    """Every raw metric some collector reads: the union of what its readers require, signed only
    when every reader says so."""
    readers: dict[str, list[RawMetric]] = {}
    for collector in collectors().values():
        for raw in collector.raw_metrics:
            readers.setdefault(raw.name, []).append(raw)
    return {
        name: RawMetric(
            name,
            tuple(sorted({p for raw in declared for p in raw.required_properties})),
            tuple(sorted({p for raw in declared for p in raw.decimal_properties})),
            all(raw.signed for raw in declared),
        )
        for name, declared in sorted(readers.items())
    }


def _params(collector: Collector, start: dt.datetime, end: dt.datetime, as_of: dt.datetime):
    return {
        "billable_metric": collector.billable_metric,
        "period_start": start,
        "period_end": end,
        "as_of": as_of,
    }


def compute(
    conn: sa.Connection,
    collector: Collector,
    start: dt.datetime,
    end: dt.datetime,
    as_of: dt.datetime,
) -> list[sa.Row]:
    """Run a collector's SELECT for [start, end) and return its rows (tests and previews)."""
    return list(conn.execute(sa.text(collector.sql), _params(collector, start, end, as_of)))


@functools.cache
def _insert_statement(collector: Collector) -> sa.TextClause:
    """sql/aggregated_usage_insert.sql around the collector's SELECT."""
    wrapper = sql.read("aggregated_usage_insert.sql")
    return sa.text(wrapper.replace("{collector_sql}", collector.sql))


@dataclass(frozen=True)
class PartitionSummary:
    rows: int
    customers: int
    total: Decimal


def replace_partition(
    conn: sa.Connection,
    collector: Collector,
    start: dt.datetime,
    end: dt.datetime,
    as_of: dt.datetime,
) -> PartitionSummary:
    """Delete the period's aggregated usage for this metric and recompute it, in one transaction.
    Two runs of one month (a UI backfill beside a schedule: in-process runs bypass Dagster's run
    queue) take turns on an advisory lock; without it the second's INSERT would collide with the
    first's uncommitted rows and fail with a unique violation. The second recomputes after the
    first commits, so the rows are whole either way."""
    params = _params(collector, start, end, as_of)
    db.lock_for_transaction(conn, f"aggregated_usage:{collector.billable_metric}:{start:%Y-%m-%d}")
    # Aggregations hash a month of groups; the default 4 MB would spill them to disk.
    conn.exec_driver_sql(f"SET LOCAL work_mem = '{COLLECTOR_WORK_MEM}'")
    conn.execute(_DELETE, params)
    conn.execute(_insert_statement(collector), params)
    row = conn.execute(_SUMMARY, params).one()
    return PartitionSummary(rows=row.rows, customers=row.customers, total=Decimal(row.total))
