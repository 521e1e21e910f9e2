"""The rate card: a price per billable metric, loaded from YAML and validated before any use.

`USAGE_RATE_CARD` names the file; unset, the card shipped beside this module (`rate_card.yaml`).
Three pricing models, each per customer per month (docs/architecture.md, "Pricing"):

    unit        quantity x unit_price
    percentage  quantity (an amount of money) x rate, a fraction (0.25 is 25 %)
    tiered      graduated: each tier prices the part of the quantity between the previous tier's
                up_to (0 for the first) and its own; the last tier has no up_to

All three are one rule, graduated tiers (a unit price or a rate is a single open tier), applied to
a month in bulk inside PostgreSQL (`sql/priced_month.sql`, exact `numeric`) and to single
quantities here (`RateCard.line_amount`); tests hold the two to each other. Money is exact: a
line's amount is quantity x price computed without rounding, then rounded to cents with
ROUND_HALF_UP (PostgreSQL's `round(numeric, 2)`: half away from zero), once. Prices are plain
decimal strings (or whole numbers); a YAML float is read from its source text, never through a
binary float.
"""

from __future__ import annotations

import decimal
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import yaml

from usage_billing.collectors import collectors
from usage_billing.config import ConfigurationError

SHIPPED_RATE_CARD = Path(__file__).with_name("rate_card.yaml")
CENT = Decimal("0.01")
MODELS = ("unit", "percentage", "tiered")

# Products of quantities and prices are exact at any size: no significant digit is ever dropped
# (Python's default context keeps 28). Only quantize() rounds, and only to cents.
EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    rounding=decimal.ROUND_HALF_UP,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


class PricingError(ValueError):
    """A quantity no price applies to (a negative month of usage)."""


def negative_quantity(billable_metric: str, quantity: object) -> PricingError:
    """The error for a negative month: negative usage is never billed."""
    return PricingError(f"{billable_metric}: a month's quantity of {quantity} is negative")


def round_to_cents(amount: Decimal) -> Decimal:
    """`amount` rounded to cents, half a cent up (away from zero)."""
    return amount.quantize(CENT, rounding=decimal.ROUND_HALF_UP, context=EXACT)


def money(amount: Decimal) -> str:
    """A money amount as a decimal string with two decimals: "1234.50"."""
    return format(round_to_cents(amount), "f")


@dataclass(frozen=True)
class Tier:
    """Prices the part of a quantity up to `up_to` (None: no end) above the previous tier's."""

    up_to: Decimal | None
    unit_price: Decimal


class _Graduated:
    """The one pricing rule: the sum over the tiers of (the part of the quantity inside the tier)
    x its unit price. A unit price and a percentage are a single open tier."""

    tiers: tuple[Tier, ...]

    def parts(self, quantity: Decimal) -> list[tuple[Tier, Decimal]]:
        """(tier, the part of `quantity` inside it) for every tier the quantity reaches."""
        parts, lower = [], Decimal(0)
        for tier in self.tiers:
            if quantity <= lower:
                break
            upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
            parts.append((tier, EXACT.subtract(upper, lower)))
            if tier.up_to is None:
                break
            lower = tier.up_to
        return parts

    def amount(self, quantity: Decimal) -> Decimal:
        """The exact, unrounded amount of `quantity`."""
        total = Decimal(0)
        for tier, part in self.parts(quantity):
            total = EXACT.add(total, EXACT.multiply(part, tier.unit_price))
        return total


@dataclass(frozen=True)
class UnitPrice(_Graduated):
    """quantity x unit_price."""

    unit_price: Decimal

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return (Tier(None, self.unit_price),)


@dataclass(frozen=True)
class Percentage(_Graduated):
    """A share of an amount of money: quantity x rate (a fraction)."""

    rate: Decimal

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return (Tier(None, self.rate),)


@dataclass(frozen=True)
class Graduated(_Graduated):
    """Graduated tiers: each prices only the part of the quantity that falls inside it."""

    tiers: tuple[Tier, ...]


PricingModel = UnitPrice | Percentage | Graduated


@dataclass(frozen=True)
class RateCard:
    """Prices by billable metric, from `source` (whose sha256 names the version in metadata)."""

    currency: str
    prices: Mapping[str, PricingModel]
    source: str
    sha256: str

    def line_amount(self, billable_metric: str, quantity: Decimal) -> Decimal:
        """The amount of one line: exact product, rounded to cents once. KeyError: no price."""
        if quantity < 0:
            raise negative_quantity(billable_metric, quantity)
        return round_to_cents(self.prices[billable_metric].amount(quantity))

    def tier_table(self) -> dict[str, list[Any]]:
        """Every tier as parallel arrays, the bind parameters of `sql/priced_month.sql`, which
        applies the same rule inside PostgreSQL."""
        table: dict[str, list[Any]] = {
            "metrics": [], "lower_bounds": [], "upper_bounds": [], "unit_prices": []
        }  # fmt: skip
        for metric, model in self.prices.items():
            lower = Decimal(0)
            for tier in model.tiers:
                table["metrics"].append(metric)
                table["lower_bounds"].append(lower)
                table["upper_bounds"].append(tier.up_to)
                table["unit_prices"].append(tier.unit_price)
                lower = tier.up_to if tier.up_to is not None else lower
        return table


# --- loading and validation -----------------------------------------------------------------


class _ExactLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when available
    """YAML whose floats stay their source text (`0.99` is "0.99", never 0.98999…)."""


_ExactLoader.add_constructor(
    "tag:yaml.org,2002:float", lambda loader, node: loader.construct_scalar(node)
)


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of `path`; ConfigurationError naming the file when it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ConfigurationError(f"{what} {path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{what} {path}: is not UTF-8 text") from None


def parse_yaml(path: Path, text: str, what: str) -> Any:
    """The YAML document in `text` (floats kept as their text); ConfigurationError naming the
    file and the line when it is not YAML."""
    try:
        return yaml.load(text, Loader=_ExactLoader)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigurationError(f"{what} {path}: not valid YAML{line}") from None


def decimal_value(value: Any) -> Decimal | None:
    """A plain non-negative decimal ("0.99", "2", 39) as Decimal; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) if value >= 0 else None
    if isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(value):
        return Decimal(value)
    return None


class _Product:
    """Reads one product entry; every problem names the file and the metric."""

    def __init__(self, path: Path, index: int, entry: Any) -> None:
        self.path = path
        self.label = f"product {index}"
        if not isinstance(entry, dict):
            self.fail("is not a mapping with billable_metric and model")
        self.entry = entry
        metric = entry.get("billable_metric")
        if not isinstance(metric, str) or not metric:
            self.fail("has no billable_metric")
        self.label = metric

    def fail(self, problem: str) -> NoReturn:
        raise ConfigurationError(f"rate card {self.path}: {self.label}: {problem}")

    def keys(self, allowed: Iterable[str]) -> None:
        unknown = sorted(set(self.entry) - {"billable_metric", "model", *allowed})
        if unknown:
            self.fail(f"unknown key {unknown[0]!r} for model {self.entry['model']!r}")

    def price(self, value: Any, name: str) -> Decimal:
        if value is None:
            self.fail(f"{name} is missing")
        price = decimal_value(value)
        if price is None:
            self.fail(f'{name} {value!r} is not a plain non-negative decimal like "0.99"')
        return price

    def model(self) -> PricingModel:
        model = self.entry.get("model")
        if model not in MODELS:
            self.fail(f"unknown model {model!r} (one of {', '.join(MODELS)})")
        if model == "unit":
            self.keys(["unit_price"])
            return UnitPrice(self.price(self.entry.get("unit_price"), "unit_price"))
        if model == "percentage":
            self.keys(["rate"])
            rate = self.price(self.entry.get("rate"), "rate")
            if rate > 1:
                self.fail(f'rate {rate} is above 1: a rate is a fraction (25 % is "0.25")')
            return Percentage(rate)
        self.keys(["tiers"])
        return Graduated(self.tiers(self.entry.get("tiers")))

    def tiers(self, entries: Any) -> tuple[Tier, ...]:
        if not isinstance(entries, list) or not entries:
            self.fail("a tiered model needs a non-empty list of tiers")
        tiers: list[Tier] = []
        for number, entry in enumerate(entries, start=1):
            last = number == len(entries)
            if not isinstance(entry, dict) or set(entry) - {"up_to", "unit_price"}:
                self.fail(f"tier {number} must be {{up_to, unit_price}}")
            if "unit_price" not in entry:
                self.fail(f"tier {number} has no unit_price")
            price = self.price(entry["unit_price"], f"tier {number} unit_price")
            up_to = entry.get("up_to")
            if up_to is None and not last:
                self.fail(f"tier {number} has no up_to: only the last tier is open-ended")
            if up_to is not None and last:
                self.fail(
                    f"the last tier has up_to {up_to}: leave it out so every quantity has a price"
                )
            bound = None if up_to is None else self.price(up_to, f"tier {number} up_to")
            previous = tiers[-1].up_to if tiers else Decimal(0)
            if bound is not None and previous is not None and bound <= previous:
                self.fail(
                    f"tiers out of order: tier {number} up_to {bound} is not above {previous}"
                )
            tiers.append(Tier(bound, price))
        return tuple(tiers)


def parse_rate_card(path: Path, text: str, billable_metrics: Iterable[str]) -> RateCard:
    """Validate the rate card `text` (read from `path`); every billable metric must have exactly
    one price."""
    document = parse_yaml(path, text, "rate card")

    def fail(problem: str) -> NoReturn:
        raise ConfigurationError(f"rate card {path}: {problem}")

    if not isinstance(document, dict):
        fail("must be a mapping with currency and products")
    unknown = sorted(set(document) - {"currency", "products"})
    if unknown:
        fail(f"unknown key {unknown[0]!r} (expected currency and products)")
    currency = document.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        fail(f"currency {currency!r} is not an ISO 4217 code like USD")
    products = document.get("products")
    if not isinstance(products, list):
        fail("products must be a list")
    metrics = sorted(billable_metrics)
    prices: dict[str, PricingModel] = {}
    for index, entry in enumerate(products, start=1):  # type: ignore[arg-type]
        product = _Product(path, index, entry)
        if product.label in prices:
            product.fail("priced twice")
        if product.label not in metrics:
            product.fail("is not a billable metric (no collector sql/collectors/<name>.sql)")
        prices[product.label] = product.model()
    for metric in metrics:
        if metric not in prices:
            fail(f"{metric}: has no price (a billable metric without a price is an error)")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return RateCard(currency, prices, str(path), digest)  # type: ignore[arg-type]


def rate_card_path(environ: Mapping[str, str] | None = None) -> Path:
    """`USAGE_RATE_CARD`, else the shipped card."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("USAGE_RATE_CARD") or SHIPPED_RATE_CARD)


def load_rate_card(path: Path | None = None) -> RateCard:
    """The rate card in `path` (default: `USAGE_RATE_CARD` or the shipped one), validated
    against the collectors; ConfigurationError with one line naming file, metric and problem."""
    path = path or rate_card_path()
    return parse_rate_card(path, read_text(path, "rate card"), collectors())
