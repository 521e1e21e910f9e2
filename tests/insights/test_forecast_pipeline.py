"""Forecasts and spikes from raw metrics through the collectors, as of a pinned clock: nothing
after the clock counts, every collector's usage comes back exactly, decimals at the edges."""

import datetime as dt
import itertools
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.helpers import line
from tests.insights.conftest import CLOCK, MONTH, load_profiles, steady_events
from usage_billing import collectors, forecasting, loader, spikes, usage_history
from usage_billing.collectors import collectors as all_collectors
from usage_billing.synthetic import profiles

pytestmark = pytest.mark.integration

LATER = dt.datetime(2025, 4, 5, tzinfo=dt.UTC)


def _snapshot(engine: sa.Engine) -> tuple[str, str]:
    found = forecasting.forecast_month(engine, MONTH, CLOCK)
    spotted = spikes.month_spikes(engine, MONTH, CLOCK)
    return (
        json.dumps([f.as_json() for f in found] + [[str(d) for d in f.days] for f in found]),
        json.dumps([s.as_json() for s in spotted]),
    )


def _first(engine: sa.Engine, metric: str, condition: str) -> sa.Row:
    query = sa.text(
        f"SELECT * FROM raw_metrics WHERE metric = :metric AND {condition} "
        "AND occurred_at < :clock ORDER BY occurred_at DESC, event_id LIMIT 1"
    )
    with engine.connect() as conn:
        return conn.execute(query, {"metric": metric, "clock": CLOCK}).one()


def _later_rows_that_would_change_the_past(engine: sa.Engine) -> list[str]:
    """Rows after the clock that restate earlier usage if a collector saw them."""
    order = _first(engine, "transaction_decision", "properties ->> 'decision' = 'approved'")
    dispute = _first(engine, "chargeback_dispute", "properties ->> 'status' = 'won'")
    alert = _first(engine, "chargeback_alert", "properties ->> 'outcome' = 'prevented'")
    soon = (CLOCK + dt.timedelta(minutes=1)).isoformat()
    return [
        line(
            "late-fraud",
            order.customer_id,
            "fraud_chargeback",
            soon,
            1,
            order_id=order.properties["order_id"],
        ),
        line(
            "late-lost",
            dispute.customer_id,
            "chargeback_dispute",
            soon,
            1,
            dispute_id=dispute.properties["dispute_id"],
            status="lost",
        ),
        line(
            "late-flip",
            alert.customer_id,
            "chargeback_alert",
            soon,
            1,
            alert_id=alert.properties["alert_id"],
            outcome="not_prevented",
        ),
        # events_sent's collector has no clock filter of its own: later the same day
        line(
            "late-events",
            order.customer_id,
            "events_sent",
            soon,
            10**9,
            environment_type="PRODUCTION",
        ),
    ]


def test_nothing_that_occurred_after_the_clock_changes_forecasts_or_spikes(
    engine: sa.Engine,
) -> None:
    load_profiles(engine, 8, until=CLOCK)
    before = _snapshot(engine)
    assert before[0] != "[]"

    late = _later_rows_that_would_change_the_past(engine)
    assert loader.load_lines(engine, late, source="late").loaded == len(late)
    load_profiles(engine, 8, until=LATER, after=CLOCK)
    assert _snapshot(engine) == before

    # the later rows are real: events_sent's SQL on the raw table sees them; the as-of cut, which
    # the collectors' runs and the history share, does not
    events = all_collectors()["events_sent"]
    start, end = dt.datetime(2025, 3, 20, tzinfo=dt.UTC), dt.datetime(2025, 3, 21, tzinfo=dt.UTC)
    params = {"period_start": start, "period_end": end, "as_of": CLOCK}
    with engine.connect() as conn:
        raw = sum(row.value for row in conn.execute(sa.text(events.sql), params))
        cut = sum(row.value for row in collectors.compute(conn, events, start, end, CLOCK))
    history = usage_history.read(engine, start.date(), end.date(), CLOCK, start.date())
    as_of = sum(sum(days.values()) for days in history["events_sent"].exact)
    assert raw - as_of >= 10**9
    assert cut == as_of
    # and a forecast as of a later clock does change
    assert forecasting.forecast_month(engine, MONTH, LATER) != forecasting.forecast_month(
        engine, MONTH, CLOCK
    )


TEMPORARY = sa.text(
    "SELECT relnamespace = pg_my_temp_schema() FROM pg_class WHERE oid = to_regclass('raw_metrics')"
)


def test_the_as_of_view_lives_only_inside_the_read(engine: sa.Engine) -> None:
    rows = list(steady_events("cust_a", dt.date(2025, 3, 19), dt.date(2025, 3, 21), 4, 1))
    loader.load_lines(engine, rows, source="t")
    with usage_history.raw_metrics_as_of(engine, CLOCK) as conn:
        seen = conn.execute(sa.text("SELECT count(*) FROM raw_metrics")).scalar()
        assert conn.execute(TEMPORARY).scalar()
    with engine.connect() as conn:
        assert not conn.execute(TEMPORARY).scalar()
        assert conn.execute(sa.text("SELECT count(*) FROM raw_metrics")).scalar() == 12
    assert seen == 4 + 2  # the 19th, and the 20th's rows of 00:00 and 06:00


def test_every_collector_gives_back_the_profiles_daily_usage_exactly(engine: sa.Engine) -> None:
    found = load_profiles(engine, 8, until=LATER)
    history = usage_history.read(
        engine, dt.date(2025, 1, 1), dt.date(2025, 4, 1), LATER, dt.date(2025, 1, 1)
    )
    assert {p.billable_metric for p in found} == set(all_collectors())
    for profile in found:
        metric = history[profile.billable_metric]
        row = metric.customers.index(profile.customer_id)
        for usage in profiles.daily_usage(profile, dt.date(2025, 1, 4), dt.date(2025, 4, 1)):
            known = metric.exact[row].get(usage.day, Decimal(0))
            assert known == usage.quantity, (profile.billable_metric, usage.day)


def test_forecasts_are_decimals_at_the_metrics_precision_around_the_exact_month_to_date(
    engine: sa.Engine,
) -> None:
    load_profiles(engine, 8, until=CLOCK)
    found = forecasting.forecast_month(engine, MONTH, CLOCK)
    start = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    with engine.connect() as conn:
        for metric, collector in all_collectors().items():
            truth: dict[str, Decimal] = {}
            rows = collectors.compute(conn, collector, start, CLOCK, CLOCK)
            for row in rows:
                truth[row.customer_id] = truth.get(row.customer_id, Decimal(0)) + row.value
            mine = {f.customer_id: f.month_to_date for f in found if f.billable_metric == metric}
            assert {c: v for c, v in mine.items() if v} == {c: v for c, v in truth.items() if v}
    money = {"chargeflow_recovered_amount", "riskified_approved_value"}
    for f in found:
        assert f.month_to_date <= f.low <= f.projected <= f.high
        places = 2 if f.billable_metric in money else 0
        assert -f.projected.as_tuple().exponent <= places, f
        assert f.as_json()["projected"] == str(f.projected)
        assert len(f.days) == 31 and sum(d.known for d in f.days) == f.month_to_date
        # The band: the running total's 80 % interval day by day, the known running total on
        # days that are over, widening to exactly the month's interval at its end.
        known = Decimal(0)
        for day in f.days:
            known += day.known
            assert day.cumulative_low <= day.cumulative <= day.cumulative_high
            assert known <= day.cumulative_low
            if day.complete:
                assert day.cumulative_low == day.cumulative == day.cumulative_high == known
        last = f.days[-1]
        assert (last.cumulative, last.cumulative_low, last.cumulative_high) == (
            f.projected, f.low, f.high,
        )  # fmt: skip
        for before, after in itertools.pairwise(f.days):
            assert before.cumulative <= after.cumulative
            assert before.cumulative_high <= after.cumulative_high


def test_fin_days_still_settling_are_forecast_not_counted_as_zero(engine: sa.Engine) -> None:
    # 10 Fin resolutions a day, every 2.4 hours, since January
    lines, day = [], dt.date(2025, 1, 10)
    while day <= dt.date(2025, 3, 20):
        for n in range(10):
            at = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(minutes=144 * n)
            props = {"ticket_id": f"t-{day}-{n}", "bot": "fin", "kind": "resolution_confirmed"}
            lines.append(
                line(f"fin-{day}-{n}", "cust_f", "support_event", at.isoformat(), 1, **props)
            )
        day += dt.timedelta(days=1)
    loader.load_lines(engine, lines, source="fin")
    clock = dt.datetime(2025, 3, 20, 12, tzinfo=dt.UTC)
    [fin] = forecasting.forecast_month(engine, MONTH, clock)
    by_day = {d.day.day: d for d in fin.days}
    # settled by 12:00 on the 20th: resolutions up to 12:00 on the 19th (5 of its 10)
    assert by_day[18].known == 10 and by_day[18].complete
    assert by_day[19].known == 5 and not by_day[19].complete
    assert by_day[20].known == 0 and by_day[19].expected == 10
    assert fin.month_to_date == 18 * 10 + 5
    assert fin.low <= 310 <= fin.high
    assert fin.projected == 310
    # what a commit's burn-down reads for the days after the month
    assert fin.expected_on(dt.date(2025, 4, 2)) == pytest.approx(Decimal(10), abs=Decimal("0.5"))


def test_a_month_that_is_over_is_forecast_as_what_it_was(engine: sa.Engine) -> None:
    lines = steady_events("cust_a", dt.date(2025, 1, 5), dt.date(2025, 3, 19), rows=4, value=5)
    loader.load_lines(engine, lines, source="t")
    [february] = forecasting.forecast_month(engine, "2025-02", CLOCK)
    assert february.month_to_date == february.projected == february.low == february.high == 560
    assert all(day.complete and day.expected == day.known == 20 for day in february.days)


def test_one_customers_forecast_reads_only_that_customer(engine: sa.Engine) -> None:
    load_profiles(engine, 8, until=CLOCK)
    everyone = forecasting.forecast_month(engine, MONTH, CLOCK)
    alone = forecasting.forecast_month(engine, MONTH, CLOCK, customers=["cust_0002"])
    assert alone == [f for f in everyone if f.customer_id == "cust_0002"]
    assert alone


def test_a_spike_under_way_is_found_in_the_morning_and_a_nightly_upload_is_not(
    engine: sa.Engine,
) -> None:
    first, yesterday, today = dt.date(2025, 1, 20), dt.date(2025, 3, 19), dt.date(2025, 3, 20)
    lines = [
        *steady_events("cust_steady", first, yesterday, rows=48, value=20),  # 960 a day
        # 09:30 today and already 3,000 in 150 rows: three times a whole day
        *steady_events("cust_steady", today, today, rows=150, value=20, hour=2),
        *steady_events("cust_nightly", first, today, rows=1, value=1000, hour=2),
    ]
    loader.load_lines(engine, lines, source="t")
    [spike] = spikes.month_spikes(engine, MONTH, CLOCK)
    assert (spike.customer_id, spike.billable_metric, spike.day) == (
        "cust_steady",
        "events_sent",
        today,
    )
    assert not spike.complete
    assert spike.quantity == 3000
    assert spike.expected == pytest.approx(Decimal(960 * 9.5 / 24), abs=30)
    assert spike.as_json()["quantity"] == "3000"
