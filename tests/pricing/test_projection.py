"""The invoice shape around projections: null until a forecast is plugged in, filled when one is,
absent once the month is over; and the straight line commits fall back to."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import at
from tests.pricing.test_rate_card import QUANTITIES, graduated
from usage_billing import invoices, projections
from usage_billing.invoices import Invoice, LineItem
from usage_billing.projections import Projection

pytestmark = pytest.mark.unit

D = Decimal
APRIL = Invoice("cust_a", "2025-04", (LineItem("fin_resolutions", D("101"), D("99.99")),))


def test_projections_are_null_until_a_forecast_plugs_in() -> None:
    shape = invoices.to_json(APRIL, at("2025-04-16 00:00"))
    assert shape == {
        "customer_id": "cust_a",
        "month": "2025-04",
        "line_items": [
            {"billable_metric": "fin_resolutions", "quantity": "101", "amount": "99.99"}
        ],
        "total": "99.99",
        "final": False,
        "projected_total": None,
        "projected_low": None,
        "projected_high": None,
    }


def test_a_forecast_fills_them_as_money() -> None:
    def forecast(customer_id: str, month: str, to_date: Decimal, as_of: dt.datetime) -> Projection:
        assert (customer_id, month, to_date) == ("cust_a", "2025-04", D("99.99"))
        return Projection(D("200.004"), D("150.005"), None)

    shape = invoices.to_json(APRIL, at("2025-04-16 00:00"), forecast)
    assert shape["projected_total"] == "200.00"
    assert (shape["projected_low"], shape["projected_high"]) == ("150.01", None)


def test_a_month_over_has_no_projection_and_becomes_final() -> None:
    # April ends May 1st; the longest restatement horizon (Riskified) is 120 days: August 29th.
    for now, final in [(at("2025-05-01 00:00"), False), (at("2025-08-29 00:00"), True)]:
        shape = invoices.to_json(APRIL, now)
        assert shape["final"] is final
        assert "projected_total" not in shape


@pytest.mark.parametrize(
    ("now", "share", "projected"),
    [
        ("2025-04-16 00:00", D("0.5"), D("199.98")),  # 15 of April's 30 days
        ("2025-04-01 00:00", D("0"), D("99.99")),  # no pace yet: the month to date
        ("2025-03-20 00:00", D("0"), D("99.99")),
        ("2025-05-02 00:00", D("1"), D("99.99")),  # over: what it was
    ],
)
def test_straight_line(now: str, share: Decimal, projected: Decimal) -> None:
    assert projections.elapsed_share("2025-04", at(now)) == share
    assert projections.straight_line("cust_a", "2025-04", D("99.99"), at(now)).total == projected


@given(graduated(), st.lists(QUANTITIES, min_size=1, max_size=20))
def test_a_paths_float_prices_follow_the_exact_ones(model, quantities: list[Decimal]) -> None:
    shape = projections.float_amounts(model, np.array([float(q) for q in quantities]))
    for quantity, approximate in zip(quantities, shape, strict=True):
        assert approximate == pytest.approx(float(model.amount(quantity)), rel=1e-9, abs=1e-9)
