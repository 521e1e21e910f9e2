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
    -- clock_offsets_hours: 24              (optional: besides `occurred_at <= :as_of`, the file
                                             compares row times with `:as_of - 24 hours`)

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

A collector sees only raw rows that occurred at or before `:as_of`: it runs in a transaction in
which `raw_metrics` is a temporary view of those rows (`rows_known_at`), whatever its SQL says. Its
value at a clock T therefore depends on T only through that cut and the offsets it declares, and
moving the clock from T0 to T1 can change it only if a row it reads occurred in
[T0 - offset, T1 - offset] for offset 0 or a declared one. With "no row it reads was committed
since", that is how a re-run knows its partition cannot have changed (`stale_reason`). The header
must declare every offset the SQL writes as `:as_of - interval 'N hours'` (checked), and one
written on the other side too (Zendesk's `last event + 72 h <= :as_of`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
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
# The rows' state when a partition was computed, and its record.
_STATE = sa.text("""
SELECT as_of, snapshot::text AS snapshot, statement_sha, rows, total
FROM aggregated_usage_state
WHERE billable_metric = :billable_metric AND period_start = :period_start
  AND period_end = :period_end
""")
_SAVE_STATE = sa.text("""
INSERT INTO aggregated_usage_state
  (billable_metric, period_start, period_end, as_of, snapshot, statement_sha, rows, total)
VALUES (:billable_metric, :period_start, :period_end, :as_of, CAST(:snapshot AS pg_snapshot),
        :statement_sha, :rows, :total)
ON CONFLICT (billable_metric, period_start, period_end) DO UPDATE
SET as_of = EXCLUDED.as_of, snapshot = EXCLUDED.snapshot, statement_sha = EXCLUDED.statement_sha,
    rows = EXCLUDED.rows, total = EXCLUDED.total, computed_at = now()
""")
_COMMITTED_SINCE = sa.text(f"""
SELECT EXISTS (SELECT 1 FROM raw_metrics WHERE metric = ANY(:metrics) AND {db.COMMITTED_SINCE})
""")
_OCCURRED_BETWEEN = sa.text("""
SELECT EXISTS (SELECT 1 FROM raw_metrics
               WHERE metric = ANY(:metrics) AND occurred_at BETWEEN :earliest AND :latest)
""")
_RAW_METRICS_TABLE = sa.text("""
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass('raw_metrics')
""")
# `:as_of` then arithmetic or a cast (`::date` would make the value jump at midnight, unseen).
_AS_OF = re.compile(r":as_of\b(?P<arithmetic>\s*(?:[-+*/]|::))?")
_AS_OF_MINUS_HOURS = re.compile(r"\s*-\s*interval\s*'(\d+)\s*hours?'", re.IGNORECASE)
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
    # Shifts at which row times meet the clock: 0 (the as-of cut) and the declared offsets.
    clock_offsets: tuple[dt.timedelta, ...] = (dt.timedelta(0),)

    @property
    def raw_metric_names(self) -> list[str]:
        """The `metric` values of the raw rows it reads."""
        return [raw.name for raw in self.raw_metrics]


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
    offsets = _clock_offsets(file_name, text, header.get("clock_offsets_hours", []))
    return Collector(
        billable_metric=one("billable_metric"),
        description=one("description"),
        raw_metrics=tuple(raw_metrics),
        restatement_horizon=dt.timedelta(days=int(one("restatement_horizon_days"))),
        sql=text,
        file_name=file_name,
        settling=dt.timedelta(hours=int(header.get("settles_after_hours", ["0"])[0])),
        clock_offsets=offsets,
    )


def _clock_offsets(file_name: str, text: str, declared: list[str]) -> tuple[dt.timedelta, ...]:
    """0 and the declared `clock_offsets_hours`, after checking the SQL meets `:as_of` only
    as-is or minus a declared whole number of hours."""
    try:
        hours = {int(h) for line in declared for h in line.split(",")}
    except ValueError:
        raise CollectorDefinitionError(f"{file_name}: clock offsets are whole hours") from None
    sql_text = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    for match in _AS_OF.finditer(sql_text):
        if not match.group("arithmetic"):
            continue
        minus = _AS_OF_MINUS_HOURS.match(sql_text, match.start("arithmetic"))
        if not minus or int(minus.group(1)) not in hours:
            raise CollectorDefinitionError(
                f"{file_name}: compare with :as_of as-is or as `:as_of - interval 'N hours'`, "
                "with N in the header's '-- clock_offsets_hours:'"
            )
    return (dt.timedelta(0), *(dt.timedelta(hours=h) for h in sorted(hours - {0})))


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
    """Run a collector's SELECT for [start, end) as of `as_of` and return its rows (tests and
    previews)."""
    with rows_known_at(conn, as_of):
        return list(conn.execute(sa.text(collector.sql), _params(collector, start, end, as_of)))


@functools.cache
def _insert_statement(collector: Collector) -> sa.TextClause:
    """sql/aggregated_usage_insert.sql around the collector's SELECT."""
    wrapper = sql.read("aggregated_usage_insert.sql")
    return sa.text(wrapper.replace("{collector_sql}", collector.sql))


@functools.cache
def statement_sha(collector: Collector) -> str:
    """What a partition's rows were computed by: a new version of the SQL recomputes them."""
    return hashlib.sha256(_insert_statement(collector).text.encode()).hexdigest()


@contextmanager
def rows_known_at(conn: sa.Connection, as_of: dt.datetime, scope: str = "") -> Iterator[None]:
    """Within the block, `raw_metrics` on `conn` is a temporary view of the raw rows that occurred
    at or before `as_of` (and meet `scope`, SQL over the alias `r`): whatever a collector's SQL
    says, it cannot read a later row. PostgreSQL resolves temporary relations first; the view
    is dropped at the end (or goes with the transaction if the block fails)."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    table = conn.execute(_RAW_METRICS_TABLE).scalar()
    if table is None or table.startswith("pg_temp"):
        raise AsOfError(f"raw_metrics resolves to {table!r}, not the raw metrics table")
    # A view cannot take bind parameters: the instant is a literal rendered from a datetime.
    where = f"r.occurred_at <= timestamptz '{as_of.astimezone(dt.UTC).isoformat()}'"
    conn.exec_driver_sql(
        f"CREATE TEMP VIEW raw_metrics AS SELECT r.* FROM {table} AS r "
        f"WHERE {where}{f' AND {scope}' if scope else ''}"
    )
    yield
    conn.exec_driver_sql("DROP VIEW pg_temp.raw_metrics")


class AsOfError(RuntimeError):
    """The as-of view cannot be set up (e.g. `raw_metrics` is already shadowed)."""


@dataclass(frozen=True)
class PartitionSummary:
    rows: int
    customers: int
    total: Decimal
    recomputed: bool = True
    reason: str = ""  # why it was recomputed, or why not


def stale_reason(
    conn: sa.Connection,
    collector: Collector,
    start: dt.datetime,
    end: dt.datetime,
    as_of: dt.datetime,
) -> str | None:
    """Why the partition's stored rows may differ from what the collector computes at `as_of`
    now; None when they cannot (see the module docstring). Reads the real `raw_metrics`."""
    verdict = _verdict(conn, collector, start, end, as_of)
    return verdict if isinstance(verdict, str) else None


def _verdict(
    conn: sa.Connection,
    collector: Collector,
    start: dt.datetime,
    end: dt.datetime,
    as_of: dt.datetime,
) -> str | sa.Row:
    """Why the stored rows may be stale, or, when they are current, their _SUMMARY row."""
    params = _params(collector, start, end, as_of)
    state = conn.execute(_STATE, params).one_or_none()
    if state is None:
        return "never computed"
    if state.statement_sha != statement_sha(collector):
        return "its SQL changed"
    since = {"metrics": collector.raw_metric_names, "since": state.snapshot}
    if conn.execute(_COMMITTED_SINCE, since).scalar():
        return f"raw metrics it reads were committed since {state.as_of.isoformat()}"
    offset = clock_crossing(conn, collector, state.as_of, as_of)
    if offset is not None:
        return f"the clock moved past raw metrics it reads (at offset {offset})"
    summary = conn.execute(_SUMMARY, params).one()
    if (summary.rows, Decimal(summary.total)) != (state.rows, Decimal(state.total)):
        return "its rows were changed outside the pipeline"
    return summary


def clock_crossing(
    conn: sa.Connection, collector: Collector, one: dt.datetime, other: dt.datetime
) -> dt.timedelta | None:
    """The first of the collector's clock offsets at which a row it reads lies between the two
    clocks (both included); None when moving the clock from one to the other cannot change what
    the collector computes from the same rows."""
    if one == other:
        return None
    earlier, later = sorted((one, other))
    metrics = collector.raw_metric_names
    for offset in collector.clock_offsets:
        window = {"metrics": metrics, "earliest": earlier - offset, "latest": later - offset}
        if conn.execute(_OCCURRED_BETWEEN, window).scalar():
            return offset
    return None


def replace_partition(
    conn: sa.Connection,
    collector: Collector,
    start: dt.datetime,
    end: dt.datetime,
    as_of: dt.datetime,
    *,
    force: bool = False,
) -> PartitionSummary:
    """Recompute the period's aggregated usage for this metric as of `as_of` and replace its rows,
    in one transaction, unless nothing it reads changed since it was last computed (`force`
    recomputes anyway).

    Two runs of one month (a UI backfill beside a schedule: in-process runs bypass Dagster's run
    queue) take turns on an advisory lock; without it the second's INSERT would collide with the
    first's uncommitted rows and fail with a unique violation. The second decides after the
    first commits, so the rows are whole either way. The snapshot recorded is taken before the
    rows are read, so a row committed meanwhile only makes the next run recompute."""
    params = _params(collector, start, end, as_of)
    db.lock_for_transaction(conn, f"aggregated_usage:{collector.billable_metric}:{start:%Y-%m-%d}")
    if force:
        reason = "a full recompute was asked for"
    else:
        verdict = _verdict(conn, collector, start, end, as_of)
        if not isinstance(verdict, str):
            return _summary(verdict, recomputed=False, reason="nothing it reads has changed")
        reason = verdict
    snapshot = conn.execute(db.CURRENT_SNAPSHOT).scalar_one()
    # Aggregations hash a month of groups; the default 4 MB would spill them to disk.
    conn.exec_driver_sql(f"SET LOCAL work_mem = '{COLLECTOR_WORK_MEM}'")
    conn.execute(_DELETE, params)
    with rows_known_at(conn, as_of):
        conn.execute(_insert_statement(collector), params)
    summary = _summary(conn.execute(_SUMMARY, params).one(), recomputed=True, reason=reason)
    state = {"snapshot": snapshot, "statement_sha": statement_sha(collector)}
    conn.execute(_SAVE_STATE, params | state | {"rows": summary.rows, "total": summary.total})
    return summary


def _summary(row: sa.Row, *, recomputed: bool, reason: str) -> PartitionSummary:
    """A _SUMMARY row as the asset's metadata."""
    return PartitionSummary(row.rows, row.customers, Decimal(row.total), recomputed, reason)
