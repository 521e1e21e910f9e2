"""A re-run keeps a partition only when what its collector computes cannot have changed: no row it
reads committed since (a slow transaction included), no row crossed by the clock at any of its
offsets, the same SQL, its rows as stored. The clock rule is checked against the collectors
themselves on the seed's hard cases: wherever it says "cannot change", they compute the same."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.helpers import line
from usage_assets.assets.aggregated_usage import RECOMPUTE_TAG, usage_assets
from usage_billing import collectors, loader, periods, synthetic, usage_history
from usage_billing.collectors import Collector
from usage_billing.resources import WarehouseResource

pytestmark = pytest.mark.integration

JANUARY = periods.month_bounds("2025-01")
SEEDED_AT = dt.datetime(2025, 2, 2, 6, tzinfo=dt.UTC)  # the seed stops here
CLOSE = dt.datetime(2025, 2, 1, 0, 30, tzinfo=dt.UTC)
MS = dt.timedelta(milliseconds=1)
# A service writing straight into the store, past the loader.
_INSERT_RAW = sa.text("""
INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, value, properties)
VALUES (:event_id, 'cust_0001', 'events_sent', :occurred_at, :value,
        '{"environment_type": "PRODUCTION"}')
""")
_ROWS = sa.text(
    "SELECT customer_id, window_start, value, computed_at FROM aggregated_usage"
    " WHERE billable_metric = :metric ORDER BY 1, 2"
)


@pytest.fixture
def seeded(engine: sa.Engine) -> sa.Engine:
    """January for 6 customers, every metric, with the generators' hard cases."""
    plan = dataclasses.replace(synthetic.plan("2025-01", 6, 3), now=SEEDED_AT)
    assert synthetic.seed(engine, plan).quarantined == 0
    return engine


def replace(
    engine: sa.Engine, metric: str, as_of: dt.datetime, **options: Any
) -> collectors.PartitionSummary:
    with engine.begin() as conn:
        collector = collectors.collectors()[metric]
        return collectors.replace_partition(conn, collector, *JANUARY, as_of, **options)


def stored(engine: sa.Engine, metric: str) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(_ROWS, {"metric": metric}))


def test_a_re_run_with_nothing_new_keeps_the_rows(seeded: sa.Engine) -> None:
    for metric in collectors.collectors():
        first = replace(seeded, metric, CLOSE)
        rows = stored(seeded, metric)
        again = replace(seeded, metric, CLOSE)
        assert first.recomputed and first.reason == "never computed"
        assert not again.recomputed, (metric, again.reason)
        assert (again.rows, again.total) == (first.rows, first.total) and first.rows > 0
        assert stored(seeded, metric) == rows  # computed_at included: not rewritten


def test_a_row_committed_since_recomputes_only_its_readers(seeded: sa.Engine) -> None:
    for metric in collectors.collectors():
        replace(seeded, metric, CLOSE)
    new = line(
        "late-1",
        "cust_0001",
        "events_sent",
        "2025-01-10T10:00:00Z",
        5,
        environment_type="PRODUCTION",
    )
    before = replace(seeded, "events_sent", CLOSE)
    assert loader.load_lines(seeded, [new], source="late").loaded == 1
    for metric in collectors.collectors():
        summary = replace(seeded, metric, CLOSE)
        assert summary.recomputed == (metric == "events_sent"), (metric, summary.reason)
        if summary.recomputed:
            assert summary.reason.startswith("raw metrics it reads were committed since")
            assert summary.total == before.total + 5


def test_a_slow_transaction_committing_after_the_run_is_seen_by_the_next(
    seeded: sa.Engine,
) -> None:
    slow = seeded.connect()
    transaction = slow.begin()
    slow.execute(_INSERT_RAW, {"event_id": "slow", "occurred_at": JANUARY[0], "value": 1000})
    first = replace(seeded, "events_sent", CLOSE)  # the slow row is not visible yet
    transaction.commit()
    slow.close()
    second = replace(seeded, "events_sent", CLOSE)
    assert second.recomputed and "committed since" in second.reason
    assert second.total == first.total + 1000


def test_the_clock_passing_a_row_recomputes_and_a_quiet_hour_does_not(seeded: sa.Engine) -> None:
    ahead = dt.datetime(2025, 1, 31, 23, tzinfo=dt.UTC)
    with seeded.begin() as conn:
        conn.execute(_INSERT_RAW, {"event_id": "ahead", "occurred_at": ahead, "value": 7})
    noon = dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)
    first = replace(seeded, "events_sent", noon)
    later_rows = sa.text(
        "SELECT count(*) FROM raw_metrics WHERE metric = 'events_sent' AND occurred_at > :t"
        " AND occurred_at <= :t2"
    )
    with seeded.connect() as conn:
        quiet = noon + dt.timedelta(minutes=1)
        assert conn.execute(later_rows, {"t": noon, "t2": quiet}).scalar() == 0
    assert not replace(seeded, "events_sent", quiet).recomputed
    crossed = replace(seeded, "events_sent", dt.datetime(2025, 2, 1, tzinfo=dt.UTC))
    assert crossed.recomputed and "clock moved past" in crossed.reason
    assert crossed.total > first.total


def test_new_sql_hand_edits_and_force_recompute(seeded: sa.Engine) -> None:
    replace(seeded, "events_sent", CLOSE)
    events = collectors.collectors()["events_sent"]
    edited = dataclasses.replace(events, sql=events.sql + "\n")
    with seeded.begin() as conn:
        summary = collectors.replace_partition(conn, edited, *JANUARY, CLOSE)
    assert summary.recomputed and summary.reason == "its SQL changed"
    replace(seeded, "events_sent", CLOSE)  # back to the shipped SQL
    with seeded.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM aggregated_usage WHERE ctid IN "
                "(SELECT ctid FROM aggregated_usage LIMIT 1)"
            )
        )
    hand = replace(seeded, "events_sent", CLOSE)
    assert hand.recomputed and hand.reason == "its rows were changed outside the pipeline"
    forced = replace(seeded, "events_sent", CLOSE, force=True)
    assert forced.recomputed and forced.reason == "a full recompute was asked for"
    assert (forced.rows, forced.total) == (hand.rows, hand.total)


def _critical_times(conn: sa.Connection, collector: Collector) -> list[dt.datetime]:
    """Every instant at which the clock meets a row the collector reads, around the month's end."""
    metrics = [raw.name for raw in collector.raw_metrics]
    times = conn.execute(
        sa.text("SELECT DISTINCT occurred_at FROM raw_metrics WHERE metric = ANY(:m)"),
        {"m": metrics},
    ).scalars()
    window = (dt.datetime(2025, 1, 27, tzinfo=dt.UTC), dt.datetime(2025, 2, 3, tzinfo=dt.UTC))
    found = {t + offset for t in times for offset in collector.clock_offsets}
    return sorted(t for t in found if window[0] <= t <= window[1])


def _computed(conn: sa.Connection, collector: Collector, as_of: dt.datetime) -> set[tuple]:
    rows = collectors.compute(conn, collector, *JANUARY, as_of)
    return {(r.customer_id, r.window_start, str(r.groups), r.value) for r in rows if r.value}


@pytest.mark.parametrize("metric", sorted(collectors.collectors()))
def test_wherever_the_clock_rule_says_unchanged_the_collector_agrees(
    seeded: sa.Engine, metric: str
) -> None:
    collector = collectors.collectors()[metric]
    picks = random.Random(metric)
    with seeded.connect() as conn:
        times = _critical_times(conn, collector)
        assert len(times) > 20
        for i in sorted(picks.sample(range(len(times) - 1), 12)):
            # as far as the clock can move without meeting a row: the rule says nothing changes
            quiet = (times[i] + MS, times[i + 1] - MS)
            if quiet[0] < quiet[1]:
                assert collectors.clock_crossing(conn, collector, *quiet) is None
                assert _computed(conn, collector, quiet[0]) == _computed(conn, collector, quiet[1])
            # across a row: the rule says it may
            assert collectors.clock_crossing(conn, collector, times[i] - MS, times[i]) is not None
        # and the rows it watches do change the value: the quiet pairs were not idle
        assert any(
            _computed(conn, collector, t - MS) != _computed(conn, collector, t + MS) for t in times
        )


def test_the_history_reads_current_partitions_exactly_as_it_computes_them(
    seeded: sa.Engine,
) -> None:
    first_day, end_day = dt.date(2024, 12, 10), dt.date(2025, 2, 1)
    fresh = usage_history.read(seeded, first_day, end_day, CLOSE, dt.date(2025, 1, 1))
    for metric in collectors.collectors():
        replace(seeded, metric, CLOSE)
    with seeded.connect() as conn:
        start = dt.datetime.combine(first_day, dt.time(), dt.UTC)
        plan = usage_history._plan(
            conn, collectors.collectors()["riskified_approved_value"], start, JANUARY[1], CLOSE
        )
    assert plan == [(start, JANUARY[0], False), (JANUARY[0], JANUARY[1], True)]
    reused = usage_history.read(seeded, first_day, end_day, CLOSE, dt.date(2025, 1, 1))
    scoped = usage_history.read(
        seeded, first_day, end_day, CLOSE, dt.date(2025, 1, 1), customers=["cust_0002"]
    )
    for metric, history in fresh.items():
        again = reused[metric]
        assert (again.customers, again.exact, again.decimals) == (
            history.customers,
            history.exact,
            history.decimals,
        ), metric
        assert (again.values == history.values).all(), metric
        if "cust_0002" in history.customers:
            row = history.customers.index("cust_0002")
            assert scoped[metric].exact == [history.exact[row]], metric


def _recomputed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Per collector of the run: whether it recomputed its partition."""
    found = [
        e.step_materialization_data.materialization
        for e in result.all_events
        if e.is_step_materialization
    ]
    return {m.asset_key.path[-1]: m.metadata["recomputed"].value for m in found}


def test_through_dagster_a_re_run_keeps_and_the_recompute_tag_recomputes(
    seeded: sa.Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USAGE_BILLING_NOW", CLOSE.isoformat())

    def run(**tags: str) -> dict[str, bool]:
        result = dg.materialize(
            usage_assets,
            partition_key="2025-01",
            resources={"warehouse": WarehouseResource(database_url=database_url)},
            tags=tags,
        )
        assert result.success
        return _recomputed(result)

    everything = set(collectors.collectors())
    assert run() == dict.fromkeys(everything, True)
    assert run() == dict.fromkeys(everything, False)
    assert run(**{RECOMPUTE_TAG: "all"}) == dict.fromkeys(everything, True)
