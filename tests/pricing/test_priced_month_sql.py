"""The month is priced inside PostgreSQL (`sql/priced_month.sql`): it agrees with the Python
pricing models on the hand-computed cases and on random graduated cards and quantities."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pricing.test_rate_card import CASES, QUANTITIES, graduated
from usage_billing import invoices, pricing
from usage_billing.pricing import Graduated, RateCard, Tier, UnitPrice

pytestmark = pytest.mark.integration

D = Decimal
METRIC = "events_sent"
_INSERT = sa.text(
    "INSERT INTO aggregated_usage (billable_metric, customer_id, window_start, value) "
    "VALUES (:metric, :customer_id, :window_start, :value)"
)


def _card(model: pricing.PricingModel) -> RateCard:
    return RateCard("USD", {METRIC: model}, "test card", "0" * 64)


def price_in_sql(
    engine: sa.Engine, model: pricing.PricingModel, quantities: list[Decimal]
) -> list[Decimal]:
    """Each quantity as one customer's month, split over two days, priced by the database."""
    rows = []
    for n, quantity in enumerate(quantities):
        half = pricing.EXACT.divide_int(quantity, 2)  # whole units on the 3rd, the rest later
        for day, value in ((3, half), (17, pricing.EXACT.subtract(quantity, half))):
            if value:
                rows.append(
                    {
                        "metric": METRIC,
                        "customer_id": f"c{n:03d}",
                        "window_start": dt.datetime(2025, 3, day, tzinfo=dt.UTC),
                        "value": value,
                    }
                )
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM aggregated_usage"))
        conn.execute(_INSERT, rows)
        priced = invoices.invoices(conn, _card(model), "2025-03")
    assert not priced.unpriced
    amounts = {i.customer_id: i.line_items[0].amount for i in priced.invoices}
    return [amounts[f"c{n:03d}"] for n in range(len(quantities))]


def test_the_hand_computed_cases(engine: sa.Engine) -> None:
    for model, quantity, exact in CASES:
        if quantity:  # a zero month has no line
            [amount] = price_in_sql(engine, model, [quantity])
            assert amount == pricing.round_to_cents(exact), (model, quantity)
            assert str(amount) == pricing.money(exact)  # two decimals, as money prints


def test_rounding_half_up_and_huge_quantities(engine: sa.Engine) -> None:
    huge = D("1234567890123456789012345678901234567890")
    events = Graduated(
        (Tier(D("1000000"), D("0")), Tier(D("100000000"), D("0.00001")), Tier(None, D("0.000005")))
    )
    assert price_in_sql(engine, UnitPrice(D("0.99")), [D("0.5"), huge, D("2.675")]) == [
        D("0.50"),  # 0.495, half a cent up
        D("1222222211222222221122222222112222222211.10"),
        D("2.65"),  # 2.64825
    ]
    assert price_in_sql(engine, UnitPrice(D("0.004")), [D("126.25"), D("1.2499")]) == [
        D("0.51"),  # 0.505
        D("0.00"),  # 0.0049996
    ]
    assert price_in_sql(engine, events, [huge]) == [D("6172839450617283945061728394506662.84")]


def test_an_unpriced_metric_and_a_negative_month(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            _INSERT,
            [
                {"metric": "legacy", "customer_id": "c1", "window_start": "2025-03-02", "value": 4},
                {"metric": METRIC, "customer_id": "c1", "window_start": "2025-03-02", "value": 1},
            ],
        )
        priced = invoices.invoices(conn, _card(UnitPrice(D("1"))), "2025-03")
        assert [row.billable_metric for row in priced.unpriced] == ["legacy"]
        assert priced.invoices[0].line_items == (invoices.LineItem(METRIC, D(1), D("1.00")),)
        conn.execute(
            _INSERT,
            [{"metric": METRIC, "customer_id": "c2", "window_start": "2025-03-02", "value": -3}],
        )
        with pytest.raises(pricing.PricingError, match="c2: events_sent: a month's quantity"):
            invoices.invoices(conn, _card(UnitPrice(D("1"))), "2025-03")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(graduated(), st.lists(QUANTITIES.filter(lambda q: q > 0), min_size=1, max_size=8))
def test_the_database_prices_as_the_python_models_do(
    engine: sa.Engine, model: Graduated, quantities: list[Decimal]
) -> None:
    card = _card(model)
    expected = [card.line_amount(METRIC, quantity) for quantity in quantities]
    assert price_in_sql(engine, model, quantities) == expected
