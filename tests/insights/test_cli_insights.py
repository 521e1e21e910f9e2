"""`usage-billing forecast` and `usage-billing spikes`: the JSON shapes of the contract, decimal
strings, the pinned clock, and one-line errors."""

import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.insights.conftest import MONTH, load_profiles, steady_events
from usage_billing import cli, loader

pytestmark = pytest.mark.integration

FORECAST_KEYS = {"customer_id", "billable_metric", "month_to_date", "projected", "low", "high"}
SPIKE_KEYS = {"customer_id", "billable_metric", "day", "quantity", "expected"}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    assert cli.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_forecast_json_has_the_contracts_shape_in_decimal_strings(
    engine: sa.Engine, clock: dt.datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    load_profiles(engine, 8, until=clock)
    rows = run_json(capsys, "forecast", "--month", MONTH)
    assert rows and all(set(row) == FORECAST_KEYS for row in rows)
    for row in rows:
        values = [Decimal(row[k]) for k in ("month_to_date", "low", "projected", "high")]
        assert values == sorted(values)
        numbers = ("month_to_date", "projected", "low", "high")
        assert all(isinstance(row[k], str) and "e" not in row[k].lower() for k in numbers)
    one = run_json(capsys, "forecast", "--month", MONTH, "--customer", "cust_0003")
    assert one == [row for row in rows if row["customer_id"] == "cust_0003"]
    assert cli.main(["forecast", "--month", MONTH]) == 0
    assert "cust_0003" in capsys.readouterr().out


def test_spikes_json_has_the_contracts_shape_and_finds_the_day_under_way(
    engine: sa.Engine, clock: dt.datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        *steady_events("cust_a", dt.date(2025, 1, 20), dt.date(2025, 3, 19), rows=24, value=10),
        # 90 rows spread over the whole day: by 09:30, 36 of them, against 9.5 of 24 usually
        *steady_events("cust_a", dt.date(2025, 3, 20), dt.date(2025, 3, 20), rows=90, value=10),
    ]
    loader.load_lines(engine, lines, source="t")
    [spike] = run_json(capsys, "spikes", "--month", MONTH)
    assert set(spike) >= SPIKE_KEYS
    assert (spike["customer_id"], spike["billable_metric"], spike["day"]) == (
        "cust_a",
        "events_sent",
        "2025-03-20",
    )
    assert spike["quantity"] == "360" and spike["complete"] is False
    assert Decimal(spike["expected"]) < 100
    assert cli.main(["spikes", "--month", MONTH]) == 0
    assert "under way" in capsys.readouterr().out
    assert run_json(capsys, "spikes", "--month", "2025-02") == []


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["forecast", "--month", "2025-3"], "is not a month written YYYY-MM"),
        (["forecast", "--month", "2025-04"], "2025-04 has not started yet"),
        (["spikes", "--month", "2024-12"], "before the first partition"),
        (["forecast", "--month", MONTH, "--customer", "nobody"], "unknown customer 'nobody'"),
        (["spikes", "--month", MONTH, "--customer", "nobody"], "unknown customer 'nobody'"),
    ],
)
def test_a_wrong_argument_is_one_line_on_stderr(
    engine: sa.Engine,
    clock: dt.datetime,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    reason: str,
) -> None:
    assert cli.main([*argv, "--json"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert reason in line
