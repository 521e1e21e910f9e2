"""Per-customer usage profiles: months of realistic daily usage with labeled spikes.

The seed generators of this package draw each day's entities with no memory of the day before;
forecasts and spike notices need history that looks like real customers': a weekly pattern
(business weekdays, busy weekends, flat), a trend that can turn, noise, one-day spikes (labeled, so
a detector can be scored), customers who start in the middle of the history and customers who
stop. A profile is one customer's use of one billable metric. `daily_usage` draws its days;
`raw_documents` renders them as raw metrics that the collectors turn back into exactly those
quantities (tested), so the same history can go through the real pipeline.

Everything is a pure function of (seed, customer, metric): drawing a longer period reproduces the
shorter one's days.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from usage_billing import periods
from usage_billing.synthetic.plan import SeedPlan


@dataclass(frozen=True)
class MetricKind:
    """How a billable metric's daily quantity behaves."""

    billable_metric: str
    money: bool  # a sum of amounts (2 decimals) rather than a count
    median_level: float  # median over customers of the usual daily quantity
    spread: float  # log-sd of the usual level across customers
    share: float  # share of customers that use the product


METRICS: dict[str, MetricKind] = {
    k.billable_metric: k
    for k in (
        MetricKind("events_sent", False, 20_000, 1.4, 0.7),
        MetricKind("agentforce_conversations", False, 60, 1.1, 0.35),
        MetricKind("fin_resolutions", False, 40, 1.0, 0.35),
        MetricKind("zendesk_automated_resolutions", False, 25, 1.0, 0.25),
        MetricKind("chargeflow_recovered_amount", True, 900, 1.0, 0.2),
        MetricKind("chargeflow_prevented_chargebacks", False, 4, 0.9, 0.2),
        MetricKind("riskified_approved_value", True, 40_000, 1.2, 0.2),
    )
}
# Weekly shapes (Monday first): B2B products quiet at weekends, shops busy at weekends.
WEEKLY_SHAPES = {
    "business": (1.2, 1.25, 1.25, 1.2, 1.1, 0.5, 0.5),
    "weekend": (0.85, 0.85, 0.85, 0.9, 1.05, 1.3, 1.2),
    "flat": (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
}
BATCH_EVENTS = 1000  # events_sent arrives in batches of about this many events
MAX_PARTS = 24  # raw rows a day for events_sent and money metrics, at most
WANDER_MEMORY = 0.9  # AR(1) coefficient of the daily log-level wander
WANDER_STEP = 0.04  # its daily innovation (stationary spread about 9 %)
AVERAGE_AMOUNT = 90.0  # of one dispute or order, in money units: sets how lumpy money days are


@dataclass(frozen=True)
class UsageProfile:
    """One customer's use of one billable metric."""

    customer_id: str
    billable_metric: str
    level: float  # usual daily quantity on an average weekday at `anchor`
    anchor: dt.date
    weekly: tuple[float, ...]  # 7 multipliers, Monday first, mean 1
    growth: tuple[float, float]  # daily log-growth before and after `turn`
    turn: dt.date
    noise: float  # day-to-day coefficient of variation on top of counting noise
    starts_on: dt.date | None  # a new customer's first day
    stops_on: dt.date | None  # a churned customer's first day without usage
    spike_rate: float  # expected spikes per day
    seed: int

    @property
    def money(self) -> bool:
        return METRICS[self.billable_metric].money


@dataclass(frozen=True)
class DayUsage:
    """A day's quantity (a decimal: money has 2 decimals) and whether it is a labeled spike."""

    day: dt.date
    quantity: Decimal
    spike: bool
    expected: float  # what the profile meant for the day before noise and spikes


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def _weekly(rng: random.Random) -> tuple[float, ...]:
    shape = rng.choices(list(WEEKLY_SHAPES), weights=[50, 25, 25])[0]
    jittered = [m * rng.uniform(0.9, 1.1) for m in WEEKLY_SHAPES[shape]]
    mean = sum(jittered) / 7
    return tuple(m / mean for m in jittered)


def _monthly_growth(rng: random.Random) -> float:
    """Daily log-growth: most customers within a few percent a month, some growing or shrinking
    fast."""
    kind = rng.choices(["steady", "growing", "shrinking"], weights=[65, 25, 10])[0]
    per_month = {
        "steady": rng.uniform(-0.04, 0.04),
        "growing": rng.uniform(0.05, 0.35),
        "shrinking": rng.uniform(-0.25, -0.05),
    }[kind]
    return math.log1p(per_month) / 30


def profile(
    customer_id: str,
    kind: MetricKind,
    start: dt.date,
    end: dt.date,
    seed: int,
    scale: float = 1.0,
) -> UsageProfile:
    """A customer's profile for one metric over [start, end); `scale` multiplies its level."""
    rng = _rng(seed, customer_id, kind.billable_metric, "profile")
    days = (end - start).days
    level = scale * kind.median_level * math.exp(rng.gauss(0, kind.spread))
    lifecycle = rng.choices(["steady", "new", "churned"], weights=[82, 12, 6])[0]
    starts_on = stops_on = None
    if lifecycle == "new":
        starts_on = start + dt.timedelta(days=rng.randrange(days // 3, days))
    elif lifecycle == "churned":
        stops_on = start + dt.timedelta(days=rng.randrange(days // 3, days))
    return UsageProfile(
        customer_id=customer_id,
        billable_metric=kind.billable_metric,
        level=level,
        anchor=start,
        weekly=_weekly(rng),
        growth=(_monthly_growth(rng), _monthly_growth(rng)),
        turn=start + dt.timedelta(days=rng.randrange(days)),
        noise=rng.uniform(0.05, 0.3),
        starts_on=starts_on,
        stops_on=stops_on,
        spike_rate=rng.choice([0.0, 1 / 90, 1 / 45, 1 / 20]),
        seed=seed,
    )


def profiles(
    customers: int, start: dt.date, end: dt.date, seed: int, scale: float = 1.0
) -> list[UsageProfile]:
    """Customers cust_0001.. and the products each uses (at least one), over [start, end);
    `scale` multiplies every level (fewer raw rows for tests and timings)."""
    found = []
    for n in range(1, customers + 1):
        customer = f"cust_{n:04d}"
        rng = _rng(seed, customer, "products")
        kinds = [k for k in METRICS.values() if rng.random() < k.share]
        for kind in kinds or [rng.choice(list(METRICS.values()))]:
            found.append(profile(customer, kind, start, end, seed, scale))
    return found


def _log_level(p: UsageProfile, day: dt.date) -> float:
    """log of the usual level on `day`: growth compounds from the anchor, turning at `turn`."""
    before, after = p.growth
    if day <= p.turn:
        return math.log(p.level) + before * (day - p.anchor).days
    return math.log(p.level) + before * (p.turn - p.anchor).days + after * (day - p.turn).days


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:  # normal approximation: exact enough, and fast for big counts
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _draw(rng: random.Random, p: UsageProfile, mean: float) -> Decimal:
    """A day's quantity around `mean`: gamma noise, then counting (or amounts for money)."""
    if mean <= 0:
        return Decimal(0)
    shape = 1 / p.noise**2
    intensity = rng.gammavariate(shape, mean / shape)
    if not p.money:
        return Decimal(_poisson(rng, intensity))
    items = _poisson(rng, intensity / AVERAGE_AMOUNT)
    # lognormal amounts with mean AVERAGE_AMOUNT, each in whole cents
    cents = sum(
        max(100, round(100 * AVERAGE_AMOUNT * rng.lognormvariate(-0.32, 0.8))) for _ in range(items)
    )
    return Decimal(cents) / 100


def daily_usage(p: UsageProfile, start: dt.date, end: dt.date) -> list[DayUsage]:
    """The profile's days in [start, end): deterministic per day, whatever the period asked."""
    days = []
    day, wander = p.anchor, 0.0
    while day < end:
        rng = _rng(p.seed, p.customer_id, p.billable_metric, day.isoformat())
        # business comes and goes: a slow AR(1) wander of the log-level around the trend
        wander = WANDER_MEMORY * wander + rng.gauss(0, WANDER_STEP)
        if day < start:
            day += dt.timedelta(days=1)
            continue
        active = (p.starts_on is None or day >= p.starts_on) and (
            p.stops_on is None or day < p.stops_on
        )
        level = math.exp(_log_level(p, day) + wander)
        expected = level * p.weekly[day.weekday()] if active else 0.0
        if p.starts_on is not None and active:  # onboarding: a week to reach the usual level
            expected *= min(1.0, 0.4 + 0.6 * (day - p.starts_on).days / 7)
        spike = active and rng.random() < p.spike_rate
        multiplier = rng.uniform(3, 8) if spike else 1.0
        days.append(DayUsage(day, _draw(rng, p, expected * multiplier), spike, expected))
        day += dt.timedelta(days=1)
    return days


# --- rendering a profile's days as raw metrics --------------------------------------------------


def arrival_parts(billable_metric: str, quantity: Decimal | float) -> int:
    """How many raw rows carry a day's quantity, arriving independently over the day: one per
    unit of a count, batches of events, disputes or orders of about the average amount (at most
    MAX_PARTS a day for those)."""
    if billable_metric == "events_sent":
        size = BATCH_EVENTS
    elif METRICS[billable_metric].money:
        size = AVERAGE_AMOUNT
    else:
        return max(int(quantity), 0)
    return max(1, min(MAX_PARTS, round(float(quantity) / size)))


def _instants(rng: random.Random, day: dt.date, count: int) -> list[dt.datetime]:
    midnight = dt.datetime.combine(day, dt.time(), dt.UTC)
    return sorted(midnight + dt.timedelta(seconds=rng.randrange(86_400)) for _ in range(count))


def _split(rng: random.Random, quantity: Decimal, parts: int) -> list[Decimal]:
    """`quantity` as `parts` positive decimals of the same precision summing to it exactly."""
    unit = Decimal("0.01") if quantity != quantity.to_integral_value() else Decimal(1)
    units = int(quantity / unit)
    parts = max(1, min(parts, units))
    cuts = sorted(rng.sample(range(1, units), parts - 1)) if parts > 1 else []
    bounds = [0, *cuts, units]
    return [unit * (b - a) for a, b in itertools.pairwise(bounds)]


def _count_events(
    plan: SeedPlan, p: UsageProfile, day: dt.date, count: int, rng: random.Random
) -> Iterator[dict[str, Any]]:
    """`count` units of a count metric on `day`, as the raw events its collector counts."""
    tag = f"{p.customer_id}-{day:%Y%m%d}"
    for n, at in enumerate(_instants(rng, day, count)):
        key = f"{tag}-{n}"
        uid = f"{p.billable_metric}-{plan.seed}-{key}"
        if p.billable_metric == "agentforce_conversations":
            props = {"conversation_id": uid, "actor": "customer", "action": "message"}
            yield plan.event("chat_action", key, p.customer_id, at, 1, **props)
        elif p.billable_metric == "fin_resolutions":
            props = {"ticket_id": uid, "bot": "fin", "kind": "resolution_confirmed"}
            yield plan.event("support_event", f"fin-{key}", p.customer_id, at, 1, **props)
        elif p.billable_metric == "zendesk_automated_resolutions":
            # counted on the day it settles, 72 h after the ticket's last event
            props = {"ticket_id": uid, "bot": "zendesk", "kind": "ai_answer"}
            settled = at - dt.timedelta(hours=72)
            yield plan.event("support_event", f"zd-{key}", p.customer_id, settled, 1, **props)
        elif p.billable_metric == "chargeflow_prevented_chargebacks":
            props = {"alert_id": uid, "outcome": "prevented"}
            yield plan.event("chargeback_alert", key, p.customer_id, at, 1, **props)


def _money_events(
    plan: SeedPlan, p: UsageProfile, day: dt.date, amount: Decimal, rng: random.Random
) -> Iterator[dict[str, Any]]:
    """`amount` of a money metric on `day`, split over a few disputes or orders."""
    tag = f"{p.customer_id}-{day:%Y%m%d}"
    parts = _split(rng, amount, arrival_parts(p.billable_metric, amount))
    for n, (at, part) in enumerate(zip(_instants(rng, day, len(parts)), parts, strict=True)):
        key = f"{tag}-{n}"
        uid = f"{p.billable_metric}-{plan.seed}-{key}"
        if p.billable_metric == "chargeflow_recovered_amount":
            props = {"dispute_id": uid, "status": "won", "amount": str(part)}
            yield plan.event("chargeback_dispute", key, p.customer_id, at, 1, **props)
        else:
            props = {"order_id": uid, "decision": "approved", "amount": str(part)}
            yield plan.event("transaction_decision", key, p.customer_id, at, 1, **props)


def raw_documents(plan: SeedPlan, p: UsageProfile) -> Iterator[dict[str, Any]]:
    """The profile's days in the plan's period as raw metrics, only those that occurred before
    `plan.now` and not before the first partition (the loader refuses those: a Zendesk ticket
    settling on its first days began before it). Each collector turns them back into exactly the
    day's quantity."""
    first = periods.month_bounds(periods.FIRST_MONTH)[0]
    for usage in daily_usage(p, plan.start.date(), plan.end.date()):
        if not usage.quantity:
            continue
        rng = _rng(p.seed, p.customer_id, p.billable_metric, usage.day.isoformat(), "raw")
        if p.billable_metric == "events_sent":
            parts = _split(rng, usage.quantity, arrival_parts("events_sent", usage.quantity))
            instants = _instants(rng, usage.day, len(parts))
            documents = (
                plan.event(
                    "events_sent",
                    f"{p.customer_id}-{usage.day:%Y%m%d}-{n}",
                    p.customer_id,
                    at,
                    str(part),
                    environment_type="PRODUCTION",
                )
                for n, (at, part) in enumerate(zip(instants, parts, strict=True))
            )
        elif p.money:
            documents = _money_events(plan, p, usage.day, usage.quantity, rng)
        else:
            documents = _count_events(plan, p, usage.day, int(usage.quantity), rng)
        for document in documents:
            if first <= dt.datetime.fromisoformat(document["occurred_at"]) < plan.now:
                yield document
