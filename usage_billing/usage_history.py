"""Daily usage per customer and billable metric **as of an instant**, straight from the collectors.

Forecasts and spike notices must see what was known at the pipeline clock and nothing later.
`aggregated_usage` cannot promise that: a partition holds whatever its last run saw, and a run
under a later clock (a backfill, a replay, a test) has seen later rows. So the history is computed
afresh: every collector's own SELECT runs over the period, inside a transaction in which the name
`raw_metrics` is a temporary view of the rows that occurred at or before the instant (PostgreSQL
looks up temporary relations first). Whatever a collector's SQL says, it cannot read a later row;
the transaction is rolled back, so nothing of it outlives the call. One rule, in one place, for
every collector present and future.

A day's value is complete once the day is over and its collector has settled
(`settles_after_hours`, e.g. Fin's 24 h handoff window); `completion` says how much of a day is
known, assuming usage spreads evenly over the day.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import sqlalchemy as sa

from usage_billing import forecast_model, periods
from usage_billing.collectors import COLLECTOR_WORK_MEM, Collector, collectors

DAY = dt.timedelta(days=1)
MAX_DECIMALS = 6  # projections are estimates: finer places would only be noise
_RAW_METRICS_TABLE = sa.text("""
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass('raw_metrics')
""")
_SCOPE_TABLE = sa.text(
    "CREATE TEMP TABLE usage_history_customers (customer_id text PRIMARY KEY) ON COMMIT DROP"
)
_SCOPE_INSERT = sa.text("INSERT INTO usage_history_customers VALUES (:customer_id)")
# Each collector's rows summed per customer and UTC day; the exact value only where it is needed.
_DAILY = """
SELECT c.customer_id,
       (c.window_start AT TIME ZONE 'UTC')::date AS day,
       sum(c.value)::float8 AS approximate,
       CASE WHEN (c.window_start AT TIME ZONE 'UTC')::date >= :exact_from
            THEN sum(c.value)::text END AS exact,
       max(scale(c.value)) AS decimals
FROM ({collector_sql}) AS c
WHERE c.window_start >= :period_start AND c.window_start < :period_end
GROUP BY 1, 2
"""


# Raw rows of a day under way per customer: how many pieces its usage so far arrived in.
_ARRIVALS = sa.text("""
SELECT customer_id, count(*) AS rows
FROM raw_metrics
WHERE metric = ANY(:metrics) AND occurred_at >= :day_start AND occurred_at < :until
GROUP BY customer_id
""")


class AsOfError(RuntimeError):
    """The as-of view cannot be set up (e.g. `raw_metrics` is already shadowed)."""


@contextmanager
def raw_metrics_as_of(
    engine: sa.Engine, as_of: dt.datetime, customers: Iterable[str] | None = None
) -> Iterator[sa.Connection]:
    """A connection on which `raw_metrics` holds only rows that occurred at or before `as_of`
    (and, when given, only `customers`' rows), for as long as the block runs."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    with engine.connect() as conn, conn.begin() as transaction:
        table = conn.execute(_RAW_METRICS_TABLE).scalar()
        if table is None or table.startswith("pg_temp"):
            raise AsOfError(f"raw_metrics resolves to {table!r}, not the raw metrics table")
        # A view cannot take bind parameters: the instant is a literal rendered from a datetime.
        scope = f"r.occurred_at <= timestamptz '{as_of.astimezone(dt.UTC).isoformat()}'"
        if customers is not None:
            conn.execute(_SCOPE_TABLE)
            wanted = [{"customer_id": c} for c in sorted(set(customers))]
            if wanted:
                conn.execute(_SCOPE_INSERT, wanted)
            # Without statistics the planner takes the scope for thousands of rows and scans the
            # whole period; knowing it is a handful, it reads those customers' rows through the
            # collectors' indexes (a portal page: 0.81 s -> 0.10 s, docs/benchmarks.md).
            conn.exec_driver_sql("ANALYZE usage_history_customers")
            scope += " AND r.customer_id IN (SELECT customer_id FROM usage_history_customers)"
        conn.exec_driver_sql(
            f"CREATE TEMP VIEW raw_metrics AS SELECT r.* FROM {table} AS r WHERE {scope}"
        )
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{COLLECTOR_WORK_MEM}'")
        try:
            yield conn
        finally:
            transaction.rollback()  # the view and the scope go with it


@dataclass
class MetricHistory:
    """One billable metric's daily usage as of an instant: a row per customer, a column per day
    from `first_day` (complete or not), exact decimals from `exact_from` on."""

    billable_metric: str
    first_day: dt.date
    customers: list[str]
    values: np.ndarray  # (customers, days) floats, for models
    exact: list[dict[dt.date, Decimal]]  # per customer: exact quantity of days >= exact_from
    decimals: int  # the metric's precision: decimal places of its quantities
    settling: dt.timedelta
    arrivals: dict[dt.date, np.ndarray]  # days under way: raw rows so far, per customer

    def quantize(self, value: float | Decimal, rounding: str = decimal.ROUND_HALF_UP) -> Decimal:
        """A model's float (or a sum with one) as a decimal at the metric's precision: whole
        units for counts, cents for money, never finer than MAX_DECIMALS places."""
        quantum = Decimal(1).scaleb(-min(self.decimals, MAX_DECIMALS))
        exact = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
        with decimal.localcontext(prec=80):  # large quantities at fine precision still fit
            return exact.quantize(quantum, rounding=rounding)

    def day(self, column: int) -> dt.date:
        return self.first_day + dt.timedelta(days=column)

    def column(self, day: dt.date) -> int:
        return (day - self.first_day).days

    def completion(self, day: dt.date, as_of: dt.datetime) -> float:
        """Share of `day`'s usage known at `as_of` (usage assumed even over the day)."""
        return completion(day, as_of, self.settling)


def completion(day: dt.date, as_of: dt.datetime, settling: dt.timedelta) -> float:
    """Share of `day` whose usage a collector settling after `settling` has counted by `as_of`."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return min(max((as_of - settling - start) / DAY, 0.0), 1.0)


# History before a month: what the model reads for the month's first day.
HISTORY_DAYS = max(forecast_model.WEEKLY_DAYS, forecast_model.TREND_DAYS, forecast_model.LEVEL_DAYS)


def read_month(
    engine: sa.Engine,
    month: str,
    as_of: dt.datetime | None = None,
    customers: Iterable[str] | None = None,
) -> tuple[dict[str, MetricHistory], dt.datetime]:
    """The month's days so far and the HISTORY_DAYS before it, as of `as_of` (the pipeline clock
    by default), exact from the month's first day; and the instant used."""
    as_of = as_of or periods.now()
    start, end = periods.month_bounds(month)
    if as_of < start:
        raise periods.MonthError(f"{month} has not started at {as_of.isoformat()}")
    first_day = start.date() - dt.timedelta(days=HISTORY_DAYS)
    histories = read(engine, first_day, end.date(), as_of, start.date(), customers)
    return histories, as_of


def read(
    engine: sa.Engine,
    first_day: dt.date,
    end_day: dt.date,
    as_of: dt.datetime,
    exact_from: dt.date,
    customers: Iterable[str] | None = None,
) -> dict[str, MetricHistory]:
    """Every collector's daily usage over [first_day, end_day) as of `as_of`, by billable metric.
    Days after `as_of`'s day are empty by construction and not read."""
    end_day = min(end_day, periods.day_start(as_of).date() + DAY)
    start = dt.datetime.combine(first_day, dt.time(), dt.UTC)
    end = dt.datetime.combine(max(end_day, first_day), dt.time(), dt.UTC)
    days = (end - start).days
    histories = {}
    with raw_metrics_as_of(engine, as_of, customers) as conn:
        for metric, collector in collectors().items():
            rows = (
                conn.execute(
                    sa.text(_DAILY.replace("{collector_sql}", collector.sql)),
                    {
                        "period_start": start,
                        "period_end": end,
                        "as_of": as_of,
                        "exact_from": exact_from,
                        "billable_metric": metric,
                    },
                )
                .tuples()
                .all()
            )
            history = _matrix(collector, first_day, days, rows)
            history.arrivals = _arrivals(conn, collector, history, as_of, end_day)
            histories[metric] = history
    return histories


def _arrivals(
    conn: sa.Connection,
    collector: Collector,
    history: MetricHistory,
    as_of: dt.datetime,
    end_day: dt.date,
) -> dict[dt.date, np.ndarray]:
    """For each day partly known at `as_of`: the raw rows of it counted so far, per customer."""
    found = {}
    day = periods.day_start(as_of - collector.settling).date()
    while day < end_day and 0 < history.completion(day, as_of) < 1:
        day_start = dt.datetime.combine(day, dt.time(), dt.UTC)
        rows = conn.execute(
            _ARRIVALS,
            {
                "metrics": [raw.name for raw in collector.raw_metrics],
                "day_start": day_start,
                "until": as_of - collector.settling,
            },
        )
        counts = dict(rows.tuples().all())
        found[day] = np.array([counts.get(c, 0) for c in history.customers])
        day -= DAY
    return found


def _matrix(
    collector: Collector, first_day: dt.date, days: int, rows: list[tuple]
) -> MetricHistory:
    """(customer_id, day, approximate, exact, decimals) rows as a customer x day matrix."""
    if rows:
        ids, dates, approximate, exact_texts, scales = zip(*rows, strict=True)
    else:
        ids, dates, approximate, exact_texts, scales = (), (), (), (), ()
    customer_array, row_of = np.unique(np.array(ids, dtype=object), return_inverse=True)
    customers = [str(c) for c in customer_array]
    columns = np.array([(d - first_day).days for d in dates], dtype=int)
    values = np.zeros((len(customers), days))
    values[row_of, columns] = np.array(approximate, dtype=float)
    exact: list[dict[dt.date, Decimal]] = [{} for _ in customers]
    for row, day, text in zip(row_of, dates, exact_texts, strict=True):
        if text is not None:
            exact[row][day] = Decimal(text)
    decimals = max((scale or 0 for scale in scales), default=0)
    return MetricHistory(
        collector.billable_metric,
        first_day,
        customers,
        values,
        exact,
        decimals,
        collector.settling,
        arrivals={},
    )
