"""Invoices through the real pipeline (raw metrics -> collectors -> sandbox -> priced usage), the
`invoice` command's shapes, restatements, and the checks that hold invoices to what was reported."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.collectors.common import History, load
from tests.pipeline import aggregate, run_month
from tests.pricing.conftest import checks_of, price_month
from usage_assets.assets.priced_usage import invoiced_equals_acknowledged, totals_equal_line_items
from usage_billing import cli, pricing
from usage_billing.resources import BillingApiResource, WarehouseResource

pytestmark = pytest.mark.integration

D = Decimal


def march() -> History:
    """cust_r: three Agentforce conversations and two Riskified approvals (126.25 x 0.4 % is
    exactly half a cent over 0.50); cust_f: two Fin resolutions and a prevented chargeback."""
    history = History("cust_r")
    for number, day in enumerate(("03-05", "03-06", "03-12")):
        history.chat(f"2025-{day} 09:00", conversation=f"c{number}")
    history.decision("2025-03-02 10:00", "o1", "approved", "125.00")
    history.decision("2025-03-03 10:00", "o2", "approved", "1.25")
    history.support("2025-03-10 10:00", "t1", "resolution_confirmed", "fin", customer_id="cust_f")
    history.support("2025-03-18 10:00", "t2", "resolution_assumed", "fin", customer_id="cust_f")
    history.alert("2025-03-11 10:00", "a1", "prevented", customer_id="cust_f")
    return history


@pytest.fixture
def reported_march(engine: sa.Engine, database_url: str, api: BillingApiResource) -> History:
    """March's history loaded, aggregated and reported through the real pipeline."""
    history = march()
    load(engine, history.events)
    assert run_month(database_url, api, "2025-03").success
    return history


def invoice_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert cli.main(["invoice", "--month", "2025-03", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _invoice(
    customer: str, items: list[tuple[str, str, str]], total: str, projected: tuple[str, str, str]
) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "month": "2025-03",
        "line_items": [{"billable_metric": m, "quantity": q, "amount": a} for m, q, a in items],
        "total": total,
        "final": False,
        "projected_total": projected[0],
        "projected_low": projected[1],
        "projected_high": projected[2],
    }


def _priced_forecast(capsys: pytest.CaptureFixture[str], customer: str, total: str) -> tuple:
    """What `forecast` projects for the customer's March, priced line by line with the rate
    card and summed: (projected, low, high), none below the total billed so far."""
    assert cli.main(["forecast", "--month", "2025-03", "--customer", customer, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    card = pricing.load_rate_card()
    sums = [
        sum(card.line_amount(row["billable_metric"], D(row[bound])) for row in rows)
        for bound in ("projected", "low", "high")
    ]
    return tuple(pricing.money(max(amount, D(total))) for amount in sums)


def _stored(engine: sa.Engine) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT customer_id, billable_metric, quantity, amount FROM invoice_line_items")
        )
        return {(r.customer_id, r.billable_metric): (r.quantity, r.amount) for r in rows}


def test_invoices_price_the_reported_month_and_follow_restatements(
    engine: sa.Engine,
    database_url: str,
    api: BillingApiResource,
    capsys: pytest.CaptureFixture[str],
) -> None:
    history = march()
    load(engine, history.events)
    assert run_month(database_url, api, "2025-03").success
    priced = price_month(database_url, "2025-03")
    assert priced.success
    assert all(check.passed for check in checks_of(priced).values())
    assert len(checks_of(priced)) == 3

    # The month is under way: each invoice also projects its total, as `forecast` does.
    projected_f = _priced_forecast(capsys, "cust_f", "40.98")
    projected_r = _priced_forecast(capsys, "cust_r", "6.51")
    assert invoice_json(capsys) == [
        _invoice(
            "cust_f",
            [("chargeflow_prevented_chargebacks", "1", "39.00"), ("fin_resolutions", "2", "1.98")],
            "40.98",
            projected_f,
        ),
        _invoice(
            "cust_r",
            [
                ("agentforce_conversations", "3", "6.00"),
                ("riskified_approved_value", "126.25", "0.51"),  # 0.505: half a cent rounds up
            ],
            "6.51",
            projected_r,
        ),
    ]
    for low_to_high in (projected_f, projected_r):
        assert D(low_to_high[1]) <= D(low_to_high[0]) <= D(low_to_high[2])
    assert _stored(engine)[("cust_r", "riskified_approved_value")] == (D("126.25"), D("0.51"))

    # A fraud chargeback on o1 and a Fin handoff inside t2's 24 hours arrive late: both
    # restate March, and the previewed amounts follow once the month runs again.
    history.fraud("2025-03-19 09:00", "o1")
    history.support("2025-03-19 08:00", "t2", "human_handoff", "fin", customer_id="cust_f")
    load(engine, history.events[-2:])
    assert run_month(database_url, api, "2025-03").success
    priced = price_month(database_url, "2025-03")
    assert priced.success and all(c.passed for c in checks_of(priced).values())
    after = invoice_json(capsys)
    assert after[0]["line_items"][1] == {
        "billable_metric": "fin_resolutions",
        "quantity": "1",
        "amount": "0.99",
    }
    assert after[0]["total"] == "39.99"
    assert after[1]["line_items"][1] == {
        "billable_metric": "riskified_approved_value",
        "quantity": "1.25",
        "amount": "0.01",  # 0.005 rounds up
    }
    assert after[1]["total"] == "6.01"
    # The assets stored exactly what the command prints.
    stored = _stored(engine)
    for invoice in after:
        for item in invoice["line_items"]:
            key = (invoice["customer_id"], item["billable_metric"])
            assert stored[key] == (D(item["quantity"]), D(item["amount"]))
    assert len(stored) == 4


def test_one_customer_unknown_customers_and_the_table(
    engine: sa.Engine,
    database_url: str,
    reported_march: History,
    capsys: pytest.CaptureFixture[str],
) -> None:

    [invoice] = invoice_json(capsys, "--customer", "cust_f")
    assert invoice["customer_id"] == "cust_f" and invoice["total"] == "40.98"

    assert cli.main(["invoice", "--month", "2025-03", "--customer", "nobody"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert "unknown customer 'nobody'" in line

    with engine.begin() as conn:  # registered, but no usage in March: an empty invoice
        conn.execute(sa.text("INSERT INTO customers (customer_id) VALUES ('cust_new')"))
    [empty] = invoice_json(capsys, "--customer", "cust_new")
    assert empty["line_items"] == [] and empty["total"] == "0.00"

    assert cli.main(["invoice", "--month", "2025-03"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("Invoices for 2025-03 in USD as of 2025-03-20 12:00 UTC: preview")
    assert "final from 2025-07-30" in table[0]
    assert table[2].split() == ["cust_f", "chargeflow_prevented_chargebacks", "1", "39.00"]
    assert table[4].split() == ["total", "40.98"]

    for month, reason in [("2025-3", "not a month written YYYY-MM"), ("2099-01", "not started")]:
        assert cli.main(["invoice", "--month", month, "--json"]) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert reason in line


def test_final_once_past_the_restatement_horizons(
    reported_march: History,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # March ends on April 1st; Riskified's horizon, the longest, is 120 days: July 30th.
    for now, final in [("2025-04-02T00:00:00+00:00", False), ("2025-07-30T00:00:00+00:00", True)]:
        monkeypatch.setenv("USAGE_BILLING_NOW", now)
        invoices = invoice_json(capsys)
        assert {invoice["final"] for invoice in invoices} == {final}
        assert all("projected_total" not in invoice for invoice in invoices)  # month is over


def test_a_rate_card_without_a_price_is_one_line(
    engine: sa.Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    card = tmp_path / "card.yaml"
    card.write_text(
        "currency: USD\nproducts:\n"
        "  - {billable_metric: agentforce_conversations, model: unit, unit_price: '2.00'}\n"
    )
    monkeypatch.setenv("USAGE_RATE_CARD", str(card))
    assert cli.main(["invoice", "--month", "2025-03"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"usage-billing: rate card {card}: ")
    assert "has no price" in line


def test_usage_without_a_price_fails_the_check_and_blocks_the_totals(
    engine: sa.Engine,
    database_url: str,
    reported_march: History,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with engine.begin() as conn:  # a metric whose collector was removed, its usage still there
        conn.execute(
            sa.text(
                "INSERT INTO aggregated_usage (billable_metric, customer_id, window_start, value) "
                "VALUES ('legacy_minutes', 'cust_r', '2025-03-04', 12)"
            )
        )
    priced = price_month(database_url, "2025-03")
    assert not priced.success
    unpriced = checks_of(priced)["every_metric_priced"]
    assert not unpriced.passed
    [problem] = unpriced.metadata["unpriced"].value
    assert problem == {
        "month": "2025-03",
        "billable_metric": "legacy_minutes",
        "customer_id": "cust_r",
        "quantity": "12",
    }
    materialized = {e.asset_key.to_user_string() for e in priced.get_asset_materialization_events()}
    assert materialized == {"invoice_line_items"}  # blocked: totals and commits keep their state

    capsys.readouterr()  # the run's log
    assert cli.main(["invoice", "--month", "2025-03"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "legacy_minutes: has usage in 2025-03 (cust_r) but no price" in line


def test_an_invoice_never_bills_what_was_not_reported(
    engine: sa.Engine, database_url: str, api: BillingApiResource
) -> None:
    load(engine, march().events)
    aggregate(database_url, "2025-03")  # collected, not reported
    priced = price_month(database_url, "2025-03")
    assert not priced.success
    check = checks_of(priced)["invoiced_equals_acknowledged"]
    assert not check.passed
    assert check.metadata["mismatches_count"].value == 4
    first = check.metadata["mismatches"].value[0]
    assert first == {
        "month": "2025-03",
        "billable_metric": "agentforce_conversations",
        "customer_id": "cust_r",
        "invoiced": "3",
        "acknowledged": None,
    }

    assert run_month(database_url, api, "2025-03").success  # reported: now they agree
    priced = price_month(database_url, "2025-03")
    assert priced.success and checks_of(priced)["invoiced_equals_acknowledged"].passed

    # Outside a partition's run the check looks at every priced month.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE usage_ledger SET acknowledged = acknowledged + 1"))
    warehouse = WarehouseResource(database_url=database_url)
    alone = invoiced_equals_acknowledged(dg.build_asset_check_context(), warehouse)
    assert not alone.passed and alone.metadata["mismatches_count"].value == 4


def test_totals_that_are_not_the_sum_of_their_line_items_fail(
    engine: sa.Engine, database_url: str, reported_march: History
) -> None:
    assert price_month(database_url, "2025-03").success
    warehouse = WarehouseResource(database_url=database_url)
    check = totals_equal_line_items(dg.build_asset_check_context(), warehouse)
    assert check.passed

    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE invoice_totals SET total = total + 0.01 WHERE customer_id = 'cust_r'")
        )
        conn.execute(
            sa.text(
                "UPDATE invoice_line_items SET amount = 0.505 "
                "WHERE billable_metric = 'riskified_approved_value'"
            )
        )
    check = totals_equal_line_items(dg.build_asset_check_context(), warehouse)
    assert not check.passed
    [problem] = check.metadata["mismatches"].value
    assert problem == {
        "month": "2025-03",
        "customer_id": "cust_r",
        "sum_of_line_items": "6.505",
        "invoice_total": "6.52",
        "fractional_cents": True,
    }


def test_a_negative_month_is_one_line_not_a_bill(
    engine: sa.Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine.begin() as conn:  # what the blocking invalid_values check keeps from reporting
        conn.execute(
            sa.text(
                "INSERT INTO aggregated_usage (billable_metric, customer_id, window_start, value) "
                "VALUES ('fin_resolutions', 'cust_n', '2025-03-04', -2)"
            )
        )
    assert cli.main(["invoice", "--month", "2025-03", "--json"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "cannot price 2025-03: cust_n: fin_resolutions: a month's quantity of -2" in line
