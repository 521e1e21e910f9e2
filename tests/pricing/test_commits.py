"""Commits burned down across months through the real pipeline along the usage forecast, the
`commits` command, and alerts once per incident."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.collectors.common import History, load
from tests.operations.conftest import Webhook
from tests.pipeline import run_month
from tests.pricing.conftest import deliver, price_month
from usage_billing import cli
from usage_billing.resources import BillingApiResource

pytestmark = pytest.mark.integration

MONTHS = ("2025-01", "2025-02", "2025-03")
# The clock: March 21st, 00:00, so that March 1st to 20th are over and the forecast of a steady
# customer is hand-checkable (a day under way would count its known part and half a day more).
CLOCK = "2025-03-21T00:00:00+00:00"


def _steady() -> History:
    """cust_r: one Agentforce conversation ($2) every day from January 1st to March 20th:
    62.00 in January, 56.00 in February, 40.00 in March by the clock."""
    history = History("cust_r")
    day = dt.date(2025, 1, 1)
    while day <= dt.date(2025, 3, 20):
        history.chat(f"{day} 09:00", conversation=f"c{day}")
        day += dt.timedelta(days=1)
    return history


def _commits(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert cli.main(["commits", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_commits_burn_down_along_the_forecast_and_alert_once_per_incident(
    engine: sa.Engine,
    database_url: str,
    api: BillingApiResource,
    webhook: Webhook,
    contracts_file: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USAGE_BILLING_NOW", CLOCK)  # the sandbox's clock stays 12 h behind
    contracts_file(
        ("cust_r", "201.00", "2025-01-01", "2025-07-01"),
        ("cust_x", "1000.00", "2025-02-01", "2026-02-01"),
    )
    load(engine, _steady().events)
    for month in MONTHS:
        assert run_month(database_url, api, month).success
        assert price_month(database_url, month, webhook.url).success

    # The forecast: one conversation a day to every commit month's end. 62 + 56 + (40 + 11 x 2)
    # + 60 + 62 + 60 = 362.00. 158.00 consumed by now; the last 43.00 take 21.5 days: March's
    # other 11 bring 22.00, April's first 10 another 20.00, and the last 1.00 is half of the
    # 11th. cust_x has no usage: nothing to forecast, and the straight line of nothing.
    assert _commits(capsys) == [
        {
            "customer_id": "cust_r",
            "commit_amount": "201.00",
            "starts_on": "2025-01-01",
            "ends_before": "2025-07-01",
            "consumed": "158.00",
            "remaining": "43.00",
            "projected_consumed_by_end": "362.00",
            "projected_exhaustion_date": "2025-04-11",
            "will_exceed": True,
        },
        {
            "customer_id": "cust_x",
            "commit_amount": "1000.00",
            "starts_on": "2025-02-01",
            "ends_before": "2026-02-01",
            "consumed": "0.00",
            "remaining": "1000.00",
            "projected_consumed_by_end": "0.00",
            "projected_exhaustion_date": None,
            "will_exceed": False,
        },
    ]
    assert webhook.received == []  # the runs recorded the alert; the sensor delivers it
    assert deliver(database_url, webhook.url) == "delivered 1 alerts"
    [alert] = webhook.received  # once, though the burn-down ran after every month, and with the
    # latest figures: an alert not delivered yet is kept up to date
    assert "Commit of cust_r projected to run out on 2025-04-11" in alert["text"]
    assert "pace: 1.0x usual, 79% used at 44% of the period (projected to exceed" in alert["text"]
    assert price_month(database_url, "2025-03", webhook.url).success
    assert deliver(database_url, webhook.url) == "no alerts due"  # still the same incident

    contracts_file(("cust_r", "151.00", "2025-01-01", "2025-07-01"))
    assert price_month(database_url, "2025-03", webhook.url).success
    assert price_month(database_url, "2025-03", webhook.url).success
    assert deliver(database_url, webhook.url) == "delivered 1 alerts"
    assert "Commit of cust_r has run out: consumed 158.00 of 151.00" in webhook.received[1]["text"]
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT customer_id, consumed, remaining FROM commit_burndown")
        )
        assert stored.all() == [("cust_r", Decimal("158.00"), Decimal("0"))]
        incidents = dict(
            conn.execute(
                sa.text("SELECT incident_key, resolved_at IS NULL FROM alert_incidents")
            ).all()
        )
    assert incidents == {
        "commit-will-exceed:cust_r:2025-01-01": False,  # superseded: it has run out
        "commit-exhausted:cust_r:2025-01-01": True,
    }

    # 118.00 by March 1st; March's 40.00 to date accrued evenly over its 20 days: the 33.00
    # still missing took 16.5 of them, March 17th.
    assert cli.main(["commits"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == [
        "cust_r", "2025-01-01..2025-07-01", "151.00", "158.00", "0.00", "362.00", "2025-03-17",
        "YES",
    ]  # fmt: skip

    # Days later, before March runs again: the month to date is still the one priced on the
    # 21st, so the projection is as of then, not now.
    monkeypatch.setenv("USAGE_BILLING_NOW", "2025-03-25T00:00:00+00:00")
    [later] = _commits(capsys)
    assert later["projected_consumed_by_end"] == "362.00"

    # A commit that leaves the contracts file takes its open incident with it. A commit that has
    # not started yet runs at the forecast's daily usage: 31 + 30 conversations in May and June.
    monkeypatch.setenv("USAGE_BILLING_NOW", CLOCK)
    contracts_file(("cust_r", "150.00", "2025-05-01", "2025-07-01"))
    assert price_month(database_url, "2025-03", webhook.url).success
    with engine.connect() as conn:
        still_open = conn.execute(
            sa.text("SELECT count(*) FROM alert_incidents WHERE resolved_at IS NULL")
        ).scalar()
    assert still_open == 0 and deliver(database_url, webhook.url) == "no alerts due"
    [future] = _commits(capsys)
    assert (future["consumed"], future["projected_consumed_by_end"]) == ("0.00", "122.00")
    assert not future["will_exceed"]


def test_commit_alerts_are_pace_aware(
    engine: sa.Engine,
    database_url: str,
    api: BillingApiResource,
    webhook: Webhook,
    contracts_file: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cust_s: one prevented chargeback ($39) a day, 80 % of a 90-day commit used at 88 % of it
    (79 days): quiet. cust_b: one a day, then three a day for the last week: burning at 3x."""
    monkeypatch.setenv("USAGE_BILLING_NOW", CLOCK)
    history = History("cust_s")
    day = dt.date(2025, 1, 1)
    while day <= dt.date(2025, 3, 20):
        history.alert(f"{day} 10:00", f"s{day}", "prevented")
        for n in range(3 if day >= dt.date(2025, 3, 14) else 1):
            history.alert(f"{day} 1{n}:30", f"b{day}-{n}", "prevented", customer_id="cust_b")
        day += dt.timedelta(days=1)
    load(engine, history.events)
    contracts_file(
        ("cust_s", "3851.25", "2025-01-01", "2025-04-01"),  # 79 x 39 = 3081.00 is 80 %
        ("cust_b", "20000.00", "2025-01-01", "2025-07-01"),
    )
    for month in MONTHS:
        assert run_month(database_url, api, month).success
        assert price_month(database_url, month, webhook.url).success

    found = {c["customer_id"]: c for c in _commits(capsys)}
    steady, burning = found["cust_s"], found["cust_b"]
    assert (steady["consumed"], steady["projected_consumed_by_end"]) == ("3081.00", "3510.00")
    assert not steady["will_exceed"] and not burning["will_exceed"]
    assert deliver(database_url, webhook.url) == "delivered 1 alerts"
    [alert] = webhook.received
    assert alert["blocks"][0]["text"]["text"] == "Commit of cust_b burning at 3.0x its usual pace"
    assert price_month(database_url, "2025-03", webhook.url).success
    assert deliver(database_url, webhook.url) == "no alerts due"  # once per incident


def test_a_broken_contracts_file_is_one_line(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    path = tmp_path / "contracts.yaml"
    path.write_text('contracts:\n  - customer_id: c1\n    commit: {amount: "1"}\n')
    monkeypatch.setenv("USAGE_CONTRACTS", str(path))
    assert cli.main(["commits", "--json"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"usage-billing: contracts {path}: c1: commit must be a mapping")
