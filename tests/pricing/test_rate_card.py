"""Pricing models against hand-computed amounts, graduated pricing's properties, and every way a
rate card can be wrong (one line naming the file, the metric and the problem)."""

from __future__ import annotations

import decimal
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usage_billing import pricing
from usage_billing.collectors import collectors
from usage_billing.config import ConfigurationError
from usage_billing.pricing import Graduated, Percentage, Tier, UnitPrice

pytestmark = pytest.mark.unit

D = Decimal
EVENTS = Graduated(
    (
        Tier(D("1000000"), D("0")),
        Tier(D("100000000"), D("0.00001")),
        Tier(None, D("0.000005")),
    )
)


# Hand-computed: (model, quantity, the exact amount before rounding).
CASES = [
    (UnitPrice(D("2.00")), D("0"), D("0")),
    (UnitPrice(D("2.00")), D("37"), D("74.00")),
    (UnitPrice(D("0.99")), D("3"), D("2.97")),
    (UnitPrice(D("0.99")), D("0.5"), D("0.495")),  # fractional quantity
    (Percentage(D("0.25")), D("129.90"), D("32.4750")),
    (Percentage(D("0.004")), D("0.01"), D("0.00004")),
    # Graduated, at and around every boundary.
    (EVENTS, D("999999"), D("0")),
    (EVENTS, D("1000000"), D("0")),  # exactly up_to: all in the free tier
    (EVENTS, D("1000001"), D("0.00001")),
    (EVENTS, D("1000000.5"), D("0.000005")),
    (EVENTS, D("100000000"), D("990.00000")),  # exactly the second up_to
    (EVENTS, D("100000001"), D("990.000005")),
    (EVENTS, D("150000000"), D("1240.000000")),
]


@pytest.mark.parametrize(("model", "quantity", "exact"), CASES)
def test_models_price_exactly(model: pricing.PricingModel, quantity: Decimal, exact: Decimal):
    assert model.amount(quantity) == exact


def test_huge_quantities_keep_every_digit() -> None:
    # 40 significant digits: Python's default context (28) would round this product.
    huge = D("1234567890123456789012345678901234567890")
    assert UnitPrice(D("0.99")).amount(huge) == D("1222222211222222221122222222112222222211.10")
    tiered = EVENTS.amount(huge)
    assert tiered == D("6172839450617283945061728394506662.839450")
    assert str(pricing.round_to_cents(tiered)) == "6172839450617283945061728394506662.84"
    card = _card(UNIT_ONLY)
    amount = card.line_amount("agentforce_conversations", huge)
    assert str(amount) == "2469135780246913578024691357802469135780.00"


@pytest.mark.parametrize(
    ("exact", "cents"),
    [
        ("0.005", "0.01"),  # half a cent rounds up
        ("0.0049999", "0.00"),
        ("2.675", "2.68"),  # a binary float would make this 2.67
        ("1.004999999999999999999999999999", "1.00"),
        ("32.4750", "32.48"),
        ("0", "0.00"),
    ],
)
def test_rounding_is_half_up_to_cents(exact: str, cents: str) -> None:
    assert pricing.money(D(exact)) == cents


def test_a_line_rounds_once_after_the_exact_product() -> None:
    card = _card(UNIT_ONLY)
    # 0.495 -> 0.50 (round once); rounding the price or the quantity first would give 0.49/0.00.
    assert card.line_amount("fin_resolutions", D("0.5")) == D("0.50")
    assert card.line_amount("riskified_approved_value", D("1.25")) == D("0.01")  # 0.005 up
    assert card.line_amount("riskified_approved_value", D("1.2499")) == D("0.00")


def test_a_negative_month_is_never_billed() -> None:
    with pytest.raises(pricing.PricingError, match="negative"):
        _card(UNIT_ONLY).line_amount("events_sent", D("-1"))


QUANTITIES = st.decimals(min_value=0, max_value=D("1e15"), places=6, allow_nan=False)
PRICES = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False)


@st.composite
def graduated(draw: st.DrawFn) -> Graduated:
    bounds = sorted(set(draw(st.lists(QUANTITIES.filter(lambda q: q > 0), max_size=5))))
    prices = draw(st.lists(PRICES, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    bounded = [Tier(b, p) for b, p in zip(bounds, prices, strict=False)]
    return Graduated((*bounded, Tier(None, prices[-1])))


@given(graduated(), QUANTITIES, QUANTITIES)
def test_graduated_pricing_is_monotone(model: Graduated, a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert model.amount(low) <= model.amount(high)


@given(graduated(), QUANTITIES)
def test_graduated_pricing_is_the_sum_of_its_parts(model: Graduated, quantity: Decimal) -> None:
    parts = model.parts(quantity)
    with decimal.localcontext(pricing.EXACT):  # the test's own sums must not round either
        assert sum(part for _, part in parts) == quantity
        assert model.amount(quantity) == sum(part * tier.unit_price for tier, part in parts)
    lower = D(0)
    for tier, part in parts:  # each tier holds at most its own width, and only what lies in it
        if tier.up_to is not None:
            assert part <= tier.up_to - lower
            lower = tier.up_to


@given(graduated(), QUANTITIES)
def test_one_open_tier_at_a_price_is_that_unit_price(model: Graduated, quantity: Decimal) -> None:
    price = model.tiers[0].unit_price
    flat = Graduated(tuple(Tier(t.up_to, price) for t in model.tiers))
    assert flat.amount(quantity) == UnitPrice(price).amount(quantity)


# --- loading ---------------------------------------------------------------------------------

UNIT_ONLY = "\n".join(
    f"  - {{billable_metric: {metric}, model: unit, unit_price: '2.00'}}"
    if metric == "agentforce_conversations"
    else f"  - {{billable_metric: {metric}, model: percentage, rate: '0.004'}}"
    if metric == "riskified_approved_value"
    else f"  - {{billable_metric: {metric}, model: unit, unit_price: '0.99'}}"
    for metric in collectors()
)


def _write(tmp_path: Path, products: str, head: str = "currency: USD\nproducts:\n") -> Path:
    path = tmp_path / "card.yaml"
    path.write_text(head + products + "\n")
    return path


def _card(products: str) -> pricing.RateCard:
    text = "currency: USD\nproducts:\n" + products + "\n"
    return pricing.parse_rate_card(Path("card.yaml"), text, collectors())


def test_the_shipped_card_has_the_seeds_prices() -> None:
    card = pricing.load_rate_card()
    assert card.currency == "USD"
    assert card.prices["agentforce_conversations"] == UnitPrice(D("2.00"))
    assert card.prices["fin_resolutions"] == UnitPrice(D("0.99"))
    assert card.prices["chargeflow_recovered_amount"] == Percentage(D("0.25"))
    assert card.prices["chargeflow_prevented_chargebacks"] == UnitPrice(D("39.00"))
    assert card.prices["riskified_approved_value"] == Percentage(D("0.004"))
    assert card.prices["zendesk_automated_resolutions"] == UnitPrice(D("1.50"))
    assert card.prices["events_sent"] == EVENTS
    assert set(card.prices) == set(collectors())


def test_usage_rate_card_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, UNIT_ONLY)
    monkeypatch.setenv("USAGE_RATE_CARD", str(path))
    card = pricing.load_rate_card()
    assert card.source == str(path)
    assert card.prices["events_sent"] == UnitPrice(D("0.99"))


def test_yaml_floats_are_read_from_their_text(tmp_path: Path) -> None:
    products = UNIT_ONLY.replace("unit_price: '0.99'", "unit_price: 0.1", 1)
    products = products.replace("rate: '0.004'", "rate: 0.004")
    card = _card(products)
    assert D("0.1") in {getattr(p, "unit_price", None) for p in card.prices.values()}
    assert card.prices["riskified_approved_value"] == Percentage(D("0.004"))


def _replace(metric: str, entry: str) -> str:
    lines = [line for line in UNIT_ONLY.splitlines() if f"billable_metric: {metric}," not in line]
    return "\n".join([*lines, entry])


TIERED = "  - billable_metric: events_sent\n    model: tiered\n    tiers:\n"


@pytest.mark.parametrize(
    ("products", "problem"),
    [
        (
            _replace("events_sent", "  - {billable_metric: events_sent, model: flat, price: '1'}"),
            "events_sent: unknown model 'flat'",
        ),
        (
            _replace("events_sent", TIERED + "      - {up_to: '10'}\n      - {unit_price: '1'}"),
            "events_sent: tier 1 has no unit_price",
        ),
        (
            _replace(
                "events_sent",
                TIERED + "      - {up_to: '10', unit_price: '0'}\n      - {up_to: '20'}\n"
                "      - {unit_price: '1'}",
            ),
            "events_sent: tier 2 has no unit_price",
        ),
        (
            _replace(
                "events_sent",
                TIERED + "      - {up_to: '100', unit_price: '0'}\n"
                "      - {up_to: '100', unit_price: '1'}\n      - {unit_price: '2'}",
            ),
            "events_sent: tiers out of order: tier 2 up_to 100 is not above 100",
        ),
        (
            _replace(
                "events_sent",
                TIERED + "      - {up_to: '100', unit_price: '0'}\n"
                "      - {up_to: '50', unit_price: '1'}\n      - {unit_price: '2'}",
            ),
            "events_sent: tiers out of order: tier 2 up_to 50 is not above 100",
        ),
        (
            _replace("events_sent", TIERED + "      - {up_to: '0', unit_price: '0'}\n"),
            "events_sent: the last tier has up_to 0",
        ),
        (
            _replace(
                "events_sent",
                TIERED + "      - {up_to: '0', unit_price: '0'}\n      - {unit_price: '1'}",
            ),
            "events_sent: tiers out of order: tier 1 up_to 0 is not above 0",
        ),
        (
            _replace(
                "events_sent",
                TIERED + "      - {unit_price: '0'}\n      - {unit_price: '1'}",
            ),
            "events_sent: tier 1 has no up_to: only the last tier is open-ended",
        ),
        (
            _replace("events_sent", TIERED + "      - {up_to: '10', unit_price: '0'}"),
            "events_sent: the last tier has up_to 10: leave it out",
        ),
        (_replace("events_sent", TIERED + "      []"), "events_sent: a tiered model needs"),
        (
            _replace(
                "events_sent", "  - {billable_metric: events_sent, model: unit, unit_price: 'two'}"
            ),
            "events_sent: unit_price 'two' is not a plain non-negative decimal",
        ),
        (
            _replace(
                "events_sent", "  - {billable_metric: events_sent, model: unit, unit_price: -1}"
            ),
            "events_sent: unit_price -1 is not a plain non-negative decimal",
        ),
        (
            _replace(
                "events_sent", "  - {billable_metric: events_sent, model: unit, unit_price: .inf}"
            ),
            "events_sent: unit_price '.inf' is not a plain non-negative decimal",
        ),
        (
            _replace(
                "events_sent", "  - {billable_metric: events_sent, model: unit, unit_price: 1.0e-5}"
            ),
            "events_sent: unit_price '1.0e-5' is not a plain non-negative decimal",
        ),
        (
            _replace(
                "events_sent", "  - {billable_metric: events_sent, model: unit, unit_price: true}"
            ),
            "events_sent: unit_price True is not a plain non-negative decimal",
        ),
        (
            _replace(
                "events_sent", "  - {billable_metric: events_sent, model: unit, unit_price: ' 1'}"
            ),
            "events_sent: unit_price ' 1' is not a plain non-negative decimal",
        ),
        (
            _replace("events_sent", "  - {billable_metric: events_sent, model: unit}"),
            "events_sent: unit_price is missing",
        ),
        (
            _replace(
                "events_sent", "  - {billable_metric: events_sent, model: percentage, rate: '25'}"
            ),
            "events_sent: rate 25 is above 1",
        ),
        (
            _replace(
                "events_sent",
                "  - {billable_metric: events_sent, model: percentage, unit_price: '1'}",
            ),
            "events_sent: unknown key 'unit_price' for model 'percentage'",
        ),
        (
            _replace("events_sent", ""),
            "events_sent: has no price (a billable metric without a price is an error)",
        ),
        (
            UNIT_ONLY + "\n  - {billable_metric: events_snet, model: unit, unit_price: '1'}",
            "events_snet: is not a billable metric",
        ),
        (
            UNIT_ONLY + "\n  - {billable_metric: events_sent, model: unit, unit_price: '1'}",
            "events_sent: priced twice",
        ),
        (UNIT_ONLY + "\n  - {model: unit, unit_price: '1'}", "product 8: has no billable_metric"),
        (UNIT_ONLY + "\n  - just a string", "product 8: is not a mapping"),
    ],
)
def test_every_rate_card_error_is_one_line_naming_file_metric_and_problem(
    tmp_path: Path, products: str, problem: str
) -> None:
    path = _write(tmp_path, products)
    with pytest.raises(ConfigurationError) as error:
        pricing.load_rate_card(path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"rate card {path}: ")
    assert problem in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("currency: USD\nproducts: [\n", "not valid YAML at line"),
        ("- a list\n", "must be a mapping with currency and products"),
        ("currency: dollars\nproducts: []\n", "currency 'dollars' is not an ISO 4217 code"),
        ("currency: USD\nproducts: {}\n", "products must be a list"),
        ("currency: USD\nproducts: []\nprice: 1\n", "unknown key 'price'"),
        ("currency: USD\nproducts: []\n", "agentforce_conversations: has no price"),
        ("\udcff", "is not UTF-8 text"),
    ],
)
def test_malformed_cards(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "card.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigurationError, match=r"^rate card .*card\.yaml: ") as error:
        pricing.load_rate_card(path)
    assert problem in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read it") as error:
        pricing.load_rate_card(tmp_path / "nope.yaml")
    assert "\n" not in str(error.value)


def test_the_error_names_the_line_of_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(textwrap.dedent("currency: USD\nproducts:\n  - {billable_metric: [\n"))
    with pytest.raises(ConfigurationError, match="not valid YAML at line 4"):
        pricing.load_rate_card(path)
