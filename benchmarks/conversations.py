"""Benchmark: the agentforce_conversations collector at 10M chat actions against the floor.

    python -m benchmarks.conversations [--actions 10000000] [--customers 500] [--explain]

Builds the chat actions in SQL (generate_series) in a fresh database on the benchmark server
(`BENCH_DATABASE_URL`, default the local PostgreSQL; dropped afterwards), with the conversation
structure of the seed generator: short exchanges, agent-only greetings, End Chat clicks,
conversations resumed after about a day, and "marathons" that go on for days (some start on Dec 31
and run into January, some run into February). Then it times, best of 3 after a warm-up run:
  collector  `replace_partition` of January, the production path (its transaction rolled back),
  floor      the same rows with the same filters, `count(*) ... GROUP BY customer, UTC day`,
  distinct   the same, counting distinct conversations per customer and day (a sort, like ours),
each with the partition's work_mem, and prints the ratios and the peak RSS of this process and
of the PostgreSQL backend that ran the queries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import sqlalchemy as sa

from benchmarks._common import machine, peak_rss_mib, scratch_database
from usage_billing import collectors, db, sql

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
AS_OF = dt.datetime(2025, 2, 15, tzinfo=dt.UTC)

# One row per conversation: who, what kind, how many actions, when, and its pace. Pseudo-random
# but deterministic: hashint8 of the id and a salt, scaled to [0, 1).
CONVERSATIONS = """
CREATE TABLE bench_conversations AS
WITH drawn AS (
  SELECT id,
    (hashint8(id) & 2147483647) / 2147483648.0 AS r_kind,
    (hashint8(id + 10000000000) & 2147483647) / 2147483648.0 AS r_size,
    (hashint8(id + 20000000000) & 2147483647) / 2147483648.0 AS r_customer,
    (hashint8(id + 30000000000) & 2147483647) / 2147483648.0 AS r_start,
    (hashint8(id + 40000000000) & 2147483647) / 2147483648.0 AS r_pace
  FROM generate_series(1, CAST(:conversations AS bigint)) AS id
),
kinds AS (
  SELECT *,
    CASE
      WHEN r_kind < 0.05 THEN 'agent_only'
      WHEN r_kind < 0.09 THEN 'end_chat_only'
      WHEN r_kind < 0.24 THEN 'resumed'
      WHEN r_kind < 0.29 THEN 'marathon'
      ELSE 'exchange'
    END AS kind
  FROM drawn
),
sized AS (
  SELECT id, kind, r_pace,
    'cust_' || lpad(floor(r_customer * r_customer * :customers)::int::text, 4, '0') AS customer_id,
    CASE kind
      WHEN 'agent_only' THEN 1 + (id % 2)::int
      WHEN 'end_chat_only' THEN 2
      WHEN 'resumed' THEN 4 + floor(r_size * 12)::int
      WHEN 'marathon' THEN 10 + floor(r_size * 30)::int
      ELSE 2 + floor(r_size * 10)::int
    END AS actions,
    timestamptz '2024-12-31 00:00:00+00' + r_start * interval '32 days' AS started_at
  FROM kinds
)
SELECT *, sum(actions) OVER (ORDER BY id) - actions AS first_action FROM sized
"""

# The actions: customers and agents take turns; a customer turn is a message, a menu option, or
# End Chat. Resumed conversations continue after 20 h, 24 h minus a minute, exactly 24 h, 24 h
# plus a minute or 30 h; marathons come back every 2-9 hours.
ACTIONS = """
INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, received_at, value, properties)
SELECT
  'ca-' || c.id || '-' || a.k,
  c.customer_id,
  'chat_action',
  t.at,
  t.at + interval '3 seconds',
  1,
  jsonb_strip_nulls(jsonb_build_object(
    'conversation_id', 'conv-' || c.id,
    'actor', x.actor,
    'action', x.action,
    'option', x.option))
FROM bench_conversations AS c
CROSS JOIN LATERAL generate_series(1, least(c.actions, :total - c.first_action)) AS a(k)
CROSS JOIN LATERAL (
  SELECT (hashint8(c.id * 64 + a.k) & 2147483647) / 2147483648.0 AS r
) AS h
CROSS JOIN LATERAL (
  SELECT c.started_at + CASE c.kind
    WHEN 'marathon' THEN (a.k - 1) * (2 + 7 * c.r_pace) * interval '1 hour'
    ELSE (a.k - 1) * (20 + 80 * c.r_pace) * interval '1 second'
  END
  + h.r * interval '15 seconds'
  + CASE WHEN c.kind = 'resumed' AND a.k > c.actions / 2 THEN
      (ARRAY[interval '20 hours', interval '1439 minutes', interval '24 hours',
             interval '1441 minutes', interval '30 hours'])[1 + floor(c.r_pace * 5)::int]
    ELSE interval '0' END AS at
) AS t
CROSS JOIN LATERAL (
  SELECT
    CASE
      WHEN c.kind = 'agent_only' OR (c.kind = 'end_chat_only' AND a.k = 1) THEN 'agent'
      WHEN c.kind = 'end_chat_only' OR a.k % 2 = 1 THEN 'customer'
      ELSE 'agent'
    END AS actor,
    CASE
      WHEN c.kind = 'end_chat_only' AND a.k = 2 THEN 'End Chat'
      WHEN c.kind IN ('agent_only', 'end_chat_only') OR a.k % 2 = 0 OR h.r < 0.72 THEN NULL
      WHEN h.r < 0.95 THEN
        (ARRAY['Track my order', 'Billing', 'Returns', 'Talk to sales', 'Reset password'])
          [1 + floor((h.r - 0.72) / 0.046)::int]
      ELSE 'End Chat'
    END AS option
) AS o
CROSS JOIN LATERAL (
  SELECT o.actor, o.option, CASE WHEN o.option IS NULL THEN 'message' ELSE 'menu_option' END
) AS x(actor, option, action)
WHERE c.first_action < :total
ORDER BY t.at  -- a producer appends in time order: the heap is not clustered by conversation
"""

QUALIFYING = """
  metric = 'chat_action'
  AND occurred_at >= :period_start AND occurred_at < :period_end AND occurred_at <= :as_of
  AND properties ->> 'actor' = 'customer'
  AND (properties ->> 'action' = 'message'
       OR (properties ->> 'action' = 'menu_option'
           AND properties ->> 'option' IS DISTINCT FROM 'End Chat'))
"""
FLOOR = f"""
SELECT customer_id, date_trunc('day', occurred_at, 'UTC'), count(*)
FROM raw_metrics WHERE {QUALIFYING} GROUP BY 1, 2
"""
FLOOR_DISTINCT = f"""
SELECT customer_id, date_trunc('day', occurred_at, 'UTC'),
       count(DISTINCT properties ->> 'conversation_id')
FROM raw_metrics WHERE {QUALIFYING} GROUP BY 1, 2
"""
SECONDARY_INDEXES = (
    "raw_metrics_metric_occurred_idx",
    "raw_metrics_received_idx",
    "raw_metrics_chat_action_conversation_idx",
)
PARAMS = {"period_start": START, "period_end": END, "as_of": AS_OF}


def build(engine: sa.Engine, actions: int, customers: int) -> None:
    """Generate the chat actions; indexes are dropped for the load and built once afterwards."""
    with engine.begin() as conn:
        for index in SECONDARY_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
        conversations = actions // 7 + 1000
        conn.execute(
            sa.text(CONVERSATIONS), {"conversations": conversations, "customers": customers}
        )
        conn.execute(sa.text(ACTIONS), {"total": actions})
        conn.exec_driver_sql("DROP TABLE bench_conversations")
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
        conn.exec_driver_sql(sql.read("schema.sql"))
        conn.exec_driver_sql(sql.read("collector_indexes.sql"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE raw_metrics")


def describe(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT count(*) AS actions,"
                " count(*) FILTER (WHERE occurred_at >= :period_start"
                "   AND occurred_at < :period_end) AS in_january,"
                " count(DISTINCT properties ->> 'conversation_id') AS conversations,"
                " count(DISTINCT customer_id) AS customers,"
                " pg_size_pretty(pg_total_relation_size('raw_metrics')) AS size,"
                " pg_size_pretty(pg_relation_size('raw_metrics_chat_action_conversation_idx'))"
                "   AS conversation_index"
                " FROM raw_metrics"
            ),
            PARAMS,
        ).one()
    return (
        f"{row.actions:,} chat actions ({row.in_january:,} in January), "
        f"{row.conversations:,} conversations, {row.customers} customers; "
        f"table with indexes {row.size}, conversation index {row.conversation_index}"
    )


def _in_partition_transaction(engine: sa.Engine, run) -> tuple[float, object, int]:
    """Time `run(conn)` in a rolled-back transaction with the partition's work_mem, on a fresh
    backend; also return that backend's peak RSS (KiB, from /proc: the server is on this host;
    it counts the shared buffers the backend touched)."""
    with engine.connect() as conn, conn.begin() as transaction:
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{collectors.COLLECTOR_WORK_MEM}'")
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        started = time.perf_counter()
        result = run(conn)
        elapsed = time.perf_counter() - started
        transaction.rollback()
    return elapsed, result, _backend_peak_kib(pid)


def _backend_peak_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return 0
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def best_of(engine: sa.Engine, run, repeat: int = 3) -> tuple[float, object, int]:
    """Warm up once, then the best time of `repeat` runs (and the highest backend peak)."""
    _in_partition_transaction(engine, run)
    results = [_in_partition_transaction(engine, run) for _ in range(repeat)]
    best = min(results, key=lambda r: r[0])
    return best[0], best[1], max(r[2] for r in results)


def collector_run(conn: sa.Connection) -> collectors.PartitionSummary:
    collector = collectors.collectors()["agentforce_conversations"]
    return collectors.replace_partition(conn, collector, START, END, AS_OF)


def query_run(query: str):
    return lambda conn: conn.execute(sa.text(query), PARAMS).all()


def explain(engine: sa.Engine) -> str:
    collector = collectors.collectors()["agentforce_conversations"]
    with engine.connect() as conn, conn.begin():
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{collectors.COLLECTOR_WORK_MEM}'")
        plan = conn.execute(
            sa.text("EXPLAIN (ANALYZE, BUFFERS) " + collector.sql), {**PARAMS, "as_of": AS_OF}
        )
        return "\n".join(row[0] for row in plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--explain", action="store_true", help="print the collector's plan")
    args = parser.parse_args()
    print(machine())
    with scratch_database() as url:
        engine = db.create_engine(url)
        started = time.perf_counter()
        build(engine, args.actions, args.customers)
        print(f"built in {time.perf_counter() - started:.0f} s: {describe(engine)}")
        engine.dispose()
        engine = sa.create_engine(db.with_driver(url), poolclass=sa.pool.NullPool)
        if args.explain:
            print(explain(engine))
        collector_s, summary, collector_kib = best_of(engine, collector_run)
        floor_s, floor_rows, floor_kib = best_of(engine, query_run(FLOOR))
        distinct_s, _, distinct_kib = best_of(engine, query_run(FLOOR_DISTINCT))
        engine.dispose()
    print(
        f"collector (replace_partition, January): {collector_s:.2f} s -> {summary.rows:,} rows, "
        f"{summary.total:,} conversations; backend peak RSS {collector_kib / 1024:.0f} MiB"
    )
    print(
        f"floor (count(*) by customer, day): {floor_s:.2f} s -> {len(floor_rows):,} rows; "
        f"backend peak RSS {floor_kib / 1024:.0f} MiB"
    )
    print(
        f"distinct (count(DISTINCT conversation) by customer, day): {distinct_s:.2f} s; "
        f"backend peak RSS {distinct_kib / 1024:.0f} MiB"
    )
    print(
        f"collector / floor: {collector_s / floor_s:.1f}x; collector / distinct: "
        f"{collector_s / distinct_s:.1f}x"
    )
    print(f"peak RSS of this process: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
