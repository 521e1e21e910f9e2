"""Commits burned down across months through the real pipeline, the `commits` command, and alerts
once per incident."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.collectors.common import History, load
from tests.operations.conftest import Webhook
from tests.pipeline import run_month
from tests.pricing.conftest import price_month
from usage_billing import cli
from usage_billing.resources import BillingApiResource

pytestmark = pytest.mark.integration

# cust_r's Agentforce conversations per month, at $2 each: 20.00, 40.00, and 26.00 by March 20th.
CONVERSATIONS = {"2025-01": 10, "2025-02": 20, "2025-03": 13}


def _history() -> History:
    history = History("cust_r")
    for month, count in CONVERSATIONS.items():
        for n in range(count):
            history.chat(f"{month}-{n % 19 + 1:02d} 09:{n:02d}", conversation=f"{month}-{n}")
    return history


def _commits(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert cli.main(["commits", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_commits_burn_down_across_months_and_alert_once_per_incident(
    engine: sa.Engine,
    database_url: str,
    api: BillingApiResource,
    webhook: Webhook,
    contracts_file: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contracts_file(
        ("cust_r", "95.00", "2025-01-01", "2025-07-01"),
        ("cust_x", "1000.00", "2025-02-01", "2026-02-01"),
    )
    load(engine, _history().events)
    for month in CONVERSATIONS:
        assert run_month(database_url, api, month).success
        assert price_month(database_url, month, webhook.url).success

    totals = []
    for month in CONVERSATIONS:
        assert cli.main(["invoice", "--month", month, "--customer", "cust_r", "--json"]) == 0
        totals.append(Decimal(json.loads(capsys.readouterr().out)[0]["total"]))
    assert totals == [Decimal("20.00"), Decimal("40.00"), Decimal("26.00")]

    # March 20th, 12:00 is 19.5 of March's 31 days: pace 26 / (19.5/31) = 41.33 a month;
    # 60 + 4 x 41.33 = 225.33 by the end. 86 consumed; the last 9 go at 15.33 over the 11.5 days
    # left in March: 6.75 days after now, March 27th.
    assert _commits(capsys) == [
        {
            "customer_id": "cust_r",
            "commit_amount": "95.00",
            "starts_on": "2025-01-01",
            "ends_before": "2025-07-01",
            "consumed": str(sum(totals)),
            "remaining": "9.00",
            "projected_consumed_by_end": "225.33",
            "projected_exhaustion_date": "2025-03-27",
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
    [alert] = webhook.received  # once, though the burn-down ran after every month
    assert "Commit of cust_r projected to run out on 2025-03-27" in alert["text"]
    assert price_month(database_url, "2025-03", webhook.url).success
    assert len(webhook.received) == 1  # still the same incident

    contracts_file(("cust_r", "75.00", "2025-01-01", "2025-07-01"))
    assert price_month(database_url, "2025-03", webhook.url).success
    assert price_month(database_url, "2025-03", webhook.url).success
    assert len(webhook.received) == 2
    assert "Commit of cust_r has run out: consumed 86.00 of 75.00" in webhook.received[1]["text"]
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT customer_id, consumed, remaining FROM commit_burndown")
        )
        assert stored.all() == [("cust_r", Decimal("86.00"), Decimal("0"))]
        incidents = dict(
            conn.execute(
                sa.text("SELECT incident_key, resolved_at IS NULL FROM alert_incidents")
            ).all()
        )
    assert incidents == {
        "commit-will-exceed:cust_r:2025-01-01": False,  # superseded: it has run out
        "commit-exhausted:cust_r:2025-01-01": True,
    }

    assert cli.main(["commits"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == [
        "cust_r", "2025-01-01..2025-07-01", "75.00", "86.00", "0.00", "225.33", "2025-03-12", "YES"
    ]  # fmt: skip

    # Days later, before March runs again: the month to date is still the one priced on the
    # 20th, so the pace is measured at the 20th, not now (it would fall to 26 / (24/31)).
    monkeypatch.setenv("USAGE_BILLING_NOW", "2025-03-25T00:00:00+00:00")
    [later] = _commits(capsys)
    assert later["projected_consumed_by_end"] == "225.33"

    # A commit that leaves the contracts file takes its open incident with it. A commit that has
    # not started yet runs at the current month's pace, now priced on the 25th: 2 x 26 / (24/31).
    contracts_file(("cust_r", "100.00", "2025-05-01", "2025-07-01"))
    assert price_month(database_url, "2025-03", webhook.url).success
    with engine.connect() as conn:
        still_open = conn.execute(
            sa.text("SELECT count(*) FROM alert_incidents WHERE resolved_at IS NULL")
        ).scalar()
    assert still_open == 0 and len(webhook.received) == 2
    [future] = _commits(capsys)
    assert (future["consumed"], future["projected_consumed_by_end"]) == ("0.00", "67.17")
    assert not future["will_exceed"]


def test_a_broken_contracts_file_is_one_line(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    path = tmp_path / "contracts.yaml"
    path.write_text('contracts:\n  - customer_id: c1\n    commit: {amount: "1"}\n')
    monkeypatch.setenv("USAGE_CONTRACTS", str(path))
    assert cli.main(["commits", "--json"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"usage-billing: contracts {path}: c1: commit must be a mapping")
