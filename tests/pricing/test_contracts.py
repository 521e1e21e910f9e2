"""Contracts: every way the file can be wrong, and commit burn-down against hand-computed cases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import at
from usage_billing import contracts
from usage_billing.config import ConfigurationError
from usage_billing.contracts import Commit, burndown
from usage_billing.projections import Forecast, MoneyPace, Projection

pytestmark = pytest.mark.unit

D = Decimal
# Half of March 2025 has passed at this instant: 15 of 31 days.
MID_MARCH = at("2025-03-16 00:00")
TOTALS = {"2025-01": D("200.00"), "2025-02": D("300.00"), "2025-03": D("100.00")}


def _commit(amount: str, starts_on: str = "2025-01-01", ends_before: str = "2025-07-01") -> Commit:
    return Commit(
        "cust_a", D(amount), dt.date.fromisoformat(starts_on), dt.date.fromisoformat(ends_before)
    )


def test_straight_line_pace_projects_the_current_and_later_months() -> None:
    status = burndown(_commit("1200.00"), TOTALS, MID_MARCH)
    # Pace: 100 / (15/31) = 206.666…; projected = 200 + 300 + 4 x 206.666… = 1326.67.
    assert status.consumed == D("600.00")
    assert status.remaining == D("600.00")
    assert status.projected_consumed_by_end == D("1326.67")
    assert status.will_exceed and not status.exhausted
    # Before June: 500 + 3 x 206.666… = 1120; the last 80 take 80 / 206.666… of June's 30 days
    # = 11.6 days: June 12th.
    assert status.projected_exhaustion_date == dt.date(2025, 6, 12)
    assert status.to_json() == {
        "customer_id": "cust_a",
        "commit_amount": "1200.00",
        "starts_on": "2025-01-01",
        "ends_before": "2025-07-01",
        "consumed": "600.00",
        "remaining": "600.00",
        "projected_consumed_by_end": "1326.67",
        "projected_exhaustion_date": "2025-06-12",
        "will_exceed": True,
    }


def test_a_commit_that_lasts() -> None:
    status = burndown(_commit("5000.00"), TOTALS, MID_MARCH)
    assert status.projected_consumed_by_end == D("1326.67")
    assert not status.will_exceed and status.projected_exhaustion_date is None
    assert status.remaining == D("4400.00")


def test_a_commit_that_has_run_out() -> None:
    status = burndown(_commit("450.00"), TOTALS, MID_MARCH)
    assert status.exhausted and status.will_exceed
    assert status.remaining == D("0")  # overage is not negative remaining
    # 200 in January, then 250 of February's 300 over its 28 days: 23.3 days, February 24th.
    assert status.projected_exhaustion_date == dt.date(2025, 2, 24)


def test_consumption_counts_only_the_commits_months() -> None:
    status = burndown(_commit("1000.00", "2025-02-01", "2025-04-01"), TOTALS, MID_MARCH)
    assert status.consumed == D("400.00")  # February and March to date, not January
    assert status.projected_consumed_by_end == D("506.67")  # 300 + 206.67


def test_a_commit_not_started_yet_runs_at_the_current_pace() -> None:
    status = burndown(_commit("950.00", "2025-06-01", "2025-12-01"), TOTALS, MID_MARCH)
    assert status.consumed == D("0")
    assert status.projected_consumed_by_end == D("1240.00")  # 6 x 206.666…
    assert status.will_exceed
    # Four months make 826.67; the last 123.33 take 18.5 of October's 31 days.
    assert status.projected_exhaustion_date == dt.date(2025, 10, 19)


def test_an_ended_commit_is_what_it_consumed() -> None:
    status = burndown(_commit("1000.00", "2025-01-01", "2025-03-01"), TOTALS, MID_MARCH)
    assert status.consumed == status.projected_consumed_by_end == D("500.00")
    assert not status.will_exceed and not status.active


def test_at_the_first_instant_of_a_month_there_is_no_pace_yet() -> None:
    status = burndown(
        _commit("1000.00"), {"2025-01": D("200"), "2025-02": D("300")}, at("2025-03-01 00:00")
    )
    assert status.consumed == status.projected_consumed_by_end == D("500.00")


def _forecast(march: Projection, later: Callable[[str], Projection | None]) -> Forecast:
    """A forecast as of MID_MARCH (March 100.00 to date): `march`, and `later(month)` after it."""

    def forecast(customer_id: str, month: str, to_date: Decimal, as_of: dt.datetime):
        assert (customer_id, as_of) == ("cust_a", MID_MARCH)
        if month == "2025-03":
            assert to_date == D("100.00")
            return march
        assert month > "2025-03" and to_date == 0
        return later(month)

    return forecast


def test_a_forecast_replaces_the_straight_line_and_its_paths_date_the_exhaustion() -> None:
    # March's other 200 accrue half by the 24th, half after; a later month accrues its 240 in
    # its second half only (as if a free tier covered the first).
    march = Projection(D("300"), D("250"), D("350"), ((at("2025-03-24 00:00"), 0.5),))
    forecast = _forecast(
        march, lambda month: Projection(D("240"), path=((at(f"{month}-16 00:00"), 0.0),))
    )
    status = burndown(_commit("1200.00"), TOTALS, MID_MARCH, forecast)
    assert status.projected_consumed_by_end == D("1520.00")  # 500 + 300 + 3 x 240
    assert status.consumed == D("600.00")  # the forecast never changes what was consumed
    # 800 by April 1st, 1040 by May 1st; May's 240 accrue over May 16..31 (16 days): the last
    # 160 take two thirds of them, 10.67 days: May 26th.
    assert status.projected_exhaustion_date == dt.date(2025, 5, 26)
    path = dict(status.path)
    assert path[at("2025-03-24 00:00")] == D("700.00")
    assert path[at("2025-04-16 00:00")] == D("800.00")
    assert path[at("2025-07-01 00:00")] == D("1520.00")


def test_without_a_forecast_for_later_months_they_run_at_the_current_projection() -> None:
    march = Projection(D("300"), D("250"), D("350"))
    status = burndown(_commit("1200.00"), TOTALS, MID_MARCH, _forecast(march, lambda _: None))
    assert status.projected_consumed_by_end == D("1700.00")  # 500 + 4 x 300


# A six-month commit of 1000.00 at 90 % of its period (163 of 181 days, June 13th), 80 % used:
# January to May 140.00 each, June 100.00 so far; June projected at its pace to 190.00.
SIX_MONTHS = {"2025-01": D("140"), "2025-02": D("140"), "2025-03": D("140")}
SIX_MONTHS |= {"2025-04": D("140"), "2025-05": D("140"), "2025-06": D("100")}
NINETY_PERCENT = at("2025-06-13 00:00")


def _paced(recent: str, usual: str) -> contracts.CommitStatus:
    pace = MoneyPace(D(recent), D(usual))
    return burndown(
        _commit("1000.00"),
        SIX_MONTHS,
        NINETY_PERCENT,
        lambda customer, month, to_date, as_of: Projection(D("190.00"), pace=pace),
    )


def _holding(status: contracts.CommitStatus, open_keys: frozenset[str] = frozenset()) -> set:
    return {
        key.split(":")[0]
        for key, holds, _ in contracts.commit_incidents(status, set(open_keys))
        if holds
    }


def test_eighty_percent_used_at_ninety_percent_on_a_steady_pace_is_quiet() -> None:
    status = _paced("4.91", "4.91")
    assert status.consumed == D("800.00") and status.projected_consumed_by_end == D("890.00")
    assert status.pace is not None
    assert status.pace.consumed_share == pytest.approx(0.8)
    assert status.pace.elapsed_share == pytest.approx(163 / 181)
    assert not status.pace.alert and _holding(status) == set()


def test_burning_at_twice_the_usual_pace_alerts_and_stays_open_until_it_settles() -> None:
    burning = _paced("9.82", "4.91")
    assert burning.pace is not None and burning.pace.burning and not burning.pace.exceeds
    assert _holding(burning) == {"commit-burning"}
    [(_, _, title)] = [c for c in contracts.commit_incidents(burning, set()) if c[1]]
    assert title == "Commit of cust_a burning at 2.0x its usual pace"
    # Once open, a pace of 1.6x keeps it open (no alert again); 1.4x resolves it.
    key = "commit-burning:cust_a:2025-01-01"
    assert _holding(_paced("7.86", "4.91"), frozenset({key})) == {"commit-burning"}
    assert _holding(_paced("7.86", "4.91")) == set()
    assert _holding(_paced("6.87", "4.91"), frozenset({key})) == set()


def test_outside_its_period_or_without_a_forecast_a_commit_has_no_pace() -> None:
    assert burndown(_commit("1000.00"), SIX_MONTHS, NINETY_PERCENT).pace is None
    ended = burndown(_commit("1000.00", ends_before="2025-06-01"), SIX_MONTHS, NINETY_PERCENT)
    assert ended.pace is None and not ended.active


# --- the contracts file ----------------------------------------------------------------------


def _load(tmp_path: Path, text: str) -> list[Commit]:
    path = tmp_path / "contracts.yaml"
    path.write_text(text)
    return contracts.load_contracts(path)


def test_the_shipped_contracts_load() -> None:
    commits = contracts.load_contracts()
    assert commits and all(c.amount > 0 for c in commits)


def test_usage_contracts_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "contracts:\n  - customer_id: acct-000123\n"
        '    commit: {amount: "5000.00", starts_on: "2026-10-01", ends_before: "2027-10-01"}\n'
    )
    monkeypatch.setenv("USAGE_CONTRACTS", str(path))
    [commit] = contracts.load_contracts()
    assert commit == Commit("acct-000123", D("5000.00"), dt.date(2026, 10, 1), dt.date(2027, 10, 1))
    assert commit.months[0] == "2026-10" and commit.months[-1] == "2027-09"
    assert len(commit.months) == 12


def test_unquoted_dates_and_amounts_and_empty_files(tmp_path: Path) -> None:
    text = (
        "contracts:\n  - customer_id: c1\n"
        "    commit: {amount: 5000.10, starts_on: 2026-10-01, ends_before: 2027-01-01}\n"
    )
    [commit] = _load(tmp_path, text)
    assert commit.amount == D("5000.10") and commit.starts_on == dt.date(2026, 10, 1)
    assert _load(tmp_path, "contracts: []\n") == []
    assert _load(tmp_path, "contracts:\n") == []


def _entry(commit: str, customer: str = "customer_id: c1") -> str:
    return f"contracts:\n  - {customer}\n    commit: {commit}\n"


GOOD = '{amount: "100.00", starts_on: "2025-01-01", ends_before: "2025-02-01"}'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- c1\n", "must be a mapping with one key, contracts"),
        ("commits: []\n", "must be a mapping with one key, contracts"),
        ("contracts: {c1: 1}\n", "contracts must be a list"),
        ("contracts: [c1]\n", "contract 1: must be a mapping with exactly customer_id and commit"),
        ("contracts:\n  - {customer_id: c1}\n", "contract 1: must be a mapping with exactly"),
        (_entry(GOOD, "customer_id: ''"), "contract 1: customer_id must be a non-empty string"),
        (_entry(GOOD, "customer_id: 7"), "contract 1: customer_id must be a non-empty string"),
        (_entry("5000"), "c1: commit must be a mapping with exactly amount, starts_on"),
        (
            _entry('{amount: "1", starts_on: "2025-01-01"}'),
            "c1: commit must be a mapping with exactly amount, starts_on and ends_before",
        ),
        (
            _entry('{amount: "1", starts_on: "2025-01-01", ends_before: "2025-02-01", x: 1}'),
            "c1: commit must be a mapping with exactly",
        ),
        (
            _entry('{amount: "five", starts_on: "2025-01-01", ends_before: "2025-02-01"}'),
            "c1: commit amount 'five' is not a positive decimal",
        ),
        (
            _entry('{amount: "0", starts_on: "2025-01-01", ends_before: "2025-02-01"}'),
            "c1: commit amount '0' is not a positive decimal",
        ),
        (
            _entry('{amount: -5, starts_on: "2025-01-01", ends_before: "2025-02-01"}'),
            "c1: commit amount -5 is not a positive decimal",
        ),
        (
            _entry('{amount: "1", starts_on: "2025-01-15", ends_before: "2025-02-01"}'),
            "c1: commit starts_on 2025-01-15 is not the first of a month",
        ),
        (
            _entry('{amount: "1", starts_on: "2025-01-01", ends_before: "2025-02-30"}'),
            "c1: commit ends_before '2025-02-30' is not a date",
        ),
        (
            _entry('{amount: "1", starts_on: "Jan 2025", ends_before: "2025-02-01"}'),
            "c1: commit starts_on 'Jan 2025' is not a date written YYYY-MM-DD",
        ),
        (
            _entry('{amount: "1", starts_on: 2025-01-01 10:00:00, ends_before: "2025-02-01"}'),
            "is not a date written YYYY-MM-DD",
        ),
        (
            _entry('{amount: "1", starts_on: "2025-03-01", ends_before: "2025-03-01"}'),
            "c1: commit ends_before 2025-03-01 is not after starts_on 2025-03-01",
        ),
        (
            _entry('{amount: "1", starts_on: "2024-12-01", ends_before: "2025-03-01"}'),
            "c1: commit starts_on 2024-12-01 is before the first partition",
        ),
        (
            _entry(GOOD) + '  - customer_id: c1\n    commit: {amount: "1", starts_on: '
            '"2024-06-01", ends_before: "2025-06-01"}\n',
            "c1: commit starts_on 2024-06-01 is before",
        ),
        (
            _entry('{amount: "1", starts_on: "2025-01-01", ends_before: "2025-06-01"}')
            + '  - customer_id: c1\n    commit: {amount: "1", starts_on: "2025-05-01", '
            'ends_before: "2025-09-01"}\n',
            "c1: commit 2025-05-01..2025-09-01 overlaps c1 2025-01-01..2025-06-01",
        ),
        ("contracts: [\n", "not valid YAML at line 2"),
    ],
)
def test_every_contract_error_is_one_line_naming_file_customer_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        _load(tmp_path, text)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"contracts {tmp_path / 'contracts.yaml'}: ")
    assert problem in message


def test_back_to_back_commits_of_one_customer_are_fine(tmp_path: Path) -> None:
    text = _entry(GOOD) + (
        '  - customer_id: c1\n    commit: {amount: "1", starts_on: "2025-02-01", '
        'ends_before: "2025-03-01"}\n'
    )
    assert [c.starts_on.month for c in _load(tmp_path, text)] == [1, 2]
