"""Schedules request the right partitions around month ends."""

import dagster as dg
import pytest

from tests.helpers import at
from usage_assets.schedules import current_month_hourly, monthly_close, restatement_sweep

pytestmark = pytest.mark.unit


def _evaluate(schedule: dg.ScheduleDefinition, when: str):
    context = dg.build_schedule_context(scheduled_execution_time=at(when))
    return schedule(context)


@pytest.mark.parametrize(
    ("when", "month"),
    [
        ("2025-01-31 23:00", "2025-01"),
        ("2025-02-01 00:00", "2025-02"),
        ("2025-02-28 23:00", "2025-02"),
        ("2025-12-31 23:00", "2025-12"),
        ("2026-01-01 00:00", "2026-01"),
    ],
)
def test_current_month_schedule_runs_the_month_it_fires_in(when: str, month: str) -> None:
    assert _evaluate(current_month_hourly, when).partition_key == month


@pytest.mark.parametrize(
    ("when", "month"),
    [
        ("2025-03-01 00:30", "2025-02"),
        ("2025-03-02 00:30", "2025-02"),
        ("2026-01-01 00:30", "2025-12"),
    ],
)
def test_monthly_close_runs_the_previous_month(when: str, month: str) -> None:
    assert _evaluate(monthly_close, when).partition_key == month


def test_monthly_close_skips_months_before_the_first_partition() -> None:
    assert isinstance(_evaluate(monthly_close, "2025-01-01 00:30"), dg.SkipReason)


def test_restatement_sweep_covers_closed_months_inside_the_longest_horizon() -> None:
    # The longest horizon is Riskified's 120 days: a month stays open until its end + 120 days.
    requests = _evaluate(restatement_sweep, "2025-07-15 04:00")
    assert [r.partition_key for r in requests] == ["2025-03", "2025-04", "2025-05", "2025-06"]
    assert len({r.run_key for r in requests}) == 4
    assert [r.partition_key for r in _evaluate(restatement_sweep, "2025-01-20 04:00")] == []


def test_schedules_start_running() -> None:
    for schedule in (current_month_hourly, monthly_close, restatement_sweep):
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
