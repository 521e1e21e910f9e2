"""Projected invoices from the usage forecast against hand-checkable cases: steady customers, whose
forecast is exactly their daily usage, priced through the rate card, tiers included."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.collectors.common import History, load
from tests.helpers import sent
from tests.pipeline import aggregate
from usage_billing import cli, loader, pricing

pytestmark = pytest.mark.integration

D = Decimal
# March 1st to 20th are over: a steady customer's forecast is its daily usage on the 11 left.
CLOCK = "2025-03-21T00:00:00+00:00"


def _every_day(last: dt.date) -> Iterator[dt.date]:
    day = dt.date(2025, 1, 1)
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


@pytest.fixture
def steady_march(engine: sa.Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """cust_p: one prevented chargeback ($39) a day; cust_t: 50,000 events a day (the first
    million of a month free, then $10 a million); both from January 1st to March 20th."""
    monkeypatch.setenv("USAGE_BILLING_NOW", CLOCK)
    history = History("cust_p")
    for day in _every_day(dt.date(2025, 3, 20)):
        history.alert(f"{day} 10:00", f"a{day}", "prevented")
    load(engine, history.events)
    events = (
        sent(f"t{day}", f"{day}T10:00:00+00:00", 50_000, customer_id="cust_t")
        for day in _every_day(dt.date(2025, 3, 20))
    )
    assert loader.load_lines(engine, events, source="t").quarantined == 0
    aggregate(database_url, "2025-03")


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert cli.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.usefixtures("steady_march")
def test_the_projected_total_is_the_forecast_priced_and_its_range_the_bounds_priced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [invoice] = _json(capsys, "invoice", "--month", "2025-03", "--customer", "cust_p")
    # 20 chargebacks so far, 31 by the month's end.
    assert (invoice["total"], invoice["projected_total"]) == ("780.00", "1209.00")
    [forecast] = _json(capsys, "forecast", "--month", "2025-03", "--customer", "cust_p")
    assert (forecast["month_to_date"], forecast["projected"]) == ("20", "31")
    low, high = D(forecast["low"]), D(forecast["high"])
    assert D(20) <= low < D(31) < high  # a real interval, not a point
    assert invoice["projected_low"] == pricing.money(39 * low)
    assert invoice["projected_high"] == pricing.money(39 * high)
    assert cli.main(["invoice", "--month", "2025-03", "--customer", "cust_p"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[-1].split() == [
        "projected", "total", "1209.00", "80", "%", "range", invoice["projected_low"], "to",
        invoice["projected_high"],
    ]  # fmt: skip


@pytest.mark.usefixtures("steady_march")
def test_tiers_price_the_projected_quantity_not_the_money_pace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [invoice] = _json(capsys, "invoice", "--month", "2025-03", "--customer", "cust_t")
    # 1,000,000 events so far: all free, so the straight line of the money says 0.00 for the
    # month. The forecast says 1,550,000 events: 550,000 past the free million, 5.50.
    assert invoice["total"] == "0.00"
    assert invoice["projected_total"] == "5.50"
    [forecast] = _json(capsys, "forecast", "--month", "2025-03", "--customer", "cust_t")
    assert forecast["projected"] == "1550000"
    card = pricing.load_rate_card()
    for bound in ("low", "high"):
        expected = card.line_amount("events_sent", D(forecast[bound]))
        assert invoice[f"projected_{bound}"] == pricing.money(expected)


@pytest.mark.usefixtures("steady_march")
def test_every_customer_at_once_projects_what_each_alone_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    everyone = _json(capsys, "invoice", "--month", "2025-03")
    alone = [
        _json(capsys, "invoice", "--month", "2025-03", "--customer", customer)[0]
        for customer in ("cust_p", "cust_t")
    ]
    assert everyone == alone


@pytest.mark.usefixtures("steady_march")
def test_a_month_over_or_a_customer_with_nothing_to_forecast(
    engine: sa.Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine.begin() as conn:  # registered, never any usage: nothing to forecast
        conn.execute(sa.text("INSERT INTO customers (customer_id) VALUES ('cust_new')"))
    [new] = _json(capsys, "invoice", "--month", "2025-03", "--customer", "cust_new")
    # The straight line (of nothing), and no interval to claim.
    assert new["total"] == "0.00"
    assert (new["projected_total"], new["projected_low"], new["projected_high"]) == (
        "0.00", None, None,
    )  # fmt: skip
    [february] = _json(capsys, "invoice", "--month", "2025-02", "--customer", "cust_p")
    assert "projected_total" not in february
