"""Seed generators for the outcome-based raw metrics (registered with `generator`).

Entities (conversations, tickets, disputes, alerts, orders) start inside the plan's month; their
follow-ups may land after it (a dispute is won weeks later, a fraud chargeback arrives months
after the approval) but never at or after `plan.now`. Each entity's randomness is drawn in full
before its events are filtered by `plan.now`, so seeding the same month again later reproduces
every earlier event exactly (same ids, same content) and only adds what has happened since.

The mix includes the cases the collectors must get right: conversations that resume after
almost, exactly or just over 24 h (also across the month end), End Chat clicks, agent-only
conversations, Fin handoffs just inside and just outside 24 h of the resolution, reopened
Zendesk tickets, disputes and alerts that flip, declined and re-reviewed orders, and fraud
chargebacks weeks after the approval. With 50 customers a month is about 10-30 thousand rows
for each of the larger raw metrics.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from usage_billing.synthetic.plan import SeedPlan, generator

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(hours=24)

Step = tuple[dt.timedelta, dict[str, Any]]  # offset from the entity's start, properties


def _rates(rng: random.Random, plan: SeedPlan, median: float) -> dict[str, float]:
    """Entities per day for each customer: a few big customers, many small ones."""
    return {customer: rng.lognormvariate(0, 0.7) * median for customer in plan.customers}


def _count(rng: random.Random, mean: float) -> int:
    """A whole number of entities with the given mean, varying from day to day."""
    return int(mean * rng.uniform(0.5, 1.5) + rng.random())


def _amount(rng: random.Random, median_cents: int) -> str:
    """A money amount as a decimal string with 2 decimals (cents are drawn, never a float sum)."""
    cents = max(100, int(rng.lognormvariate(0, 0.9) * median_cents))
    return f"{cents // 100}.{cents % 100:02d}"


def _start(rng: random.Random, day: dt.datetime) -> dt.datetime:
    return day + dt.timedelta(seconds=rng.randrange(86_400))


@dataclass(frozen=True)
class _Entity:
    customer: str
    key: str  # unique within the plan; event ids are derived from it
    id: str  # the producer's id (conversation_id, ticket_id, ...), unique across plans
    start: dt.datetime


def _entities(plan: SeedPlan, rng: random.Random, median: float) -> Iterator[_Entity]:
    """Every entity the month starts, in a stable order."""
    rates = _rates(rng, plan, median)
    for day in plan.days():
        for customer in plan.customers:
            for n in range(_count(rng, rates[customer])):
                key = f"{customer}-d{day:%d}-{n}"
                yield _Entity(customer, key, f"{plan.month}-s{plan.seed}-{key}", _start(rng, day))


def _emit(
    plan: SeedPlan, metric: str, entity: _Entity, id_property: str, steps: Sequence[Step]
) -> Iterator[dict[str, Any]]:
    """The entity's events that have happened by `plan.now`."""
    for n, (offset, properties) in enumerate(steps):
        at = entity.start + offset
        if at < plan.now:
            key = f"{entity.key}-{n}"
            props = {id_property: entity.id, **properties}
            yield plan.event(metric, key, entity.customer, at, 1, **props)


# --- chat_action (agentforce_conversations) ---------------------------------------------------

MENU = ["Track my order", "Billing", "Returns", "Talk to sales", "Reset password"]
# How long after its last message a conversation resumes: around, exactly and over 24 h.
RESUME_AFTER = [2 * HOUR, 20 * HOUR, DAY - MINUTE, DAY, DAY + MINUTE, 30 * HOUR, 3 * DAY]


def _customer_turn(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.25:
        return {"actor": "customer", "action": "menu_option", "option": rng.choice(MENU)}
    return {"actor": "customer", "action": "message"}


def _exchange(rng: random.Random, at: dt.timedelta) -> list[Step]:
    """A burst of customer turns and agent replies, seconds to minutes apart."""
    steps: list[Step] = []
    for _ in range(rng.randint(1, 3)):
        steps.append((at, _customer_turn(rng)))
        at += dt.timedelta(seconds=rng.randint(2, 40))
        steps.append((at, {"actor": "agent", "action": "message"}))
        at += dt.timedelta(seconds=rng.randint(10, 300))
    return steps


def _end_chat(at: dt.timedelta) -> Step:
    return at, {"actor": "customer", "action": "menu_option", "option": "End Chat"}


def _conversation(rng: random.Random) -> list[Step]:
    kind = rng.choices(
        ["exchange", "agent_only", "end_chat_only", "resumed", "marathon"],
        weights=[72, 6, 4, 13, 5],
    )[0]
    if kind == "agent_only":  # a proactive greeting nobody answered
        return [(dt.timedelta(0), {"actor": "agent", "action": "message"})]
    if kind == "end_chat_only":
        return [(dt.timedelta(0), {"actor": "agent", "action": "message"}), _end_chat(MINUTE)]
    steps = _exchange(rng, dt.timedelta(0))
    if kind == "resumed":
        for _ in range(rng.randint(1, 2)):
            steps += _exchange(rng, steps[-1][0] + rng.choice(RESUME_AFTER))
    elif kind == "marathon":  # a customer coming back every few hours for days
        for _ in range(rng.randint(6, 16)):
            steps += _exchange(rng, steps[-1][0] + rng.uniform(2, 9) * HOUR)
    if rng.random() < 0.4:
        steps.append(_end_chat(steps[-1][0] + dt.timedelta(seconds=rng.randint(5, 120))))
    return steps


@generator("chat_action")
def chat_actions(plan: SeedPlan) -> Iterator[dict[str, Any]]:
    """Agentforce conversations: mostly short exchanges, some resumed or running for days."""
    rng = plan.rng("chat_action")
    for conversation in _entities(plan, rng, median=2.2):
        yield from _emit(plan, "chat_action", conversation, "conversation_id", _conversation(rng))


# --- support_event (fin_resolutions, zendesk_automated_resolutions) ---------------------------

# When a human steps in after Fin's resolution: just inside, exactly at and just past 24 h.
HANDOFF_AFTER = [10 * MINUTE, 3 * HOUR, DAY - MINUTE, DAY, DAY + MINUTE, 30 * HOUR]


def _ask_and_answer(rng: random.Random, at: dt.timedelta) -> list[tuple[dt.timedelta, str]]:
    answered = at + dt.timedelta(seconds=rng.randint(3, 30))
    return [(at, "customer_message"), (answered, "ai_answer")]


def _fin_ticket(rng: random.Random) -> list[tuple[dt.timedelta, str]]:
    kind = rng.choices(
        ["confirmed", "assumed", "escalated", "handoff_after", "resolved_twice"],
        weights=[40, 20, 15, 15, 10],
    )[0]
    steps = _ask_and_answer(rng, dt.timedelta(0))
    resolved = steps[-1][0] + rng.uniform(1, 30) * MINUTE
    if kind == "escalated":
        return [*steps, (resolved, "human_handoff")]
    if kind == "assumed":  # nobody answered Fin's last reply for a while
        return [*steps, (steps[-1][0] + rng.uniform(1, 4) * HOUR, "resolution_assumed")]
    steps.append((resolved, "resolution_confirmed"))
    if kind == "handoff_after":
        steps.append((resolved + rng.choice(HANDOFF_AFTER), "human_handoff"))
    elif kind == "resolved_twice":
        again = resolved + rng.uniform(2, 50) * HOUR
        steps += [*_ask_and_answer(rng, again), (again + 5 * MINUTE, "resolution_confirmed")]
    return steps


def _zendesk_ticket(rng: random.Random) -> list[tuple[dt.timedelta, str]]:
    kind = rng.choices(
        ["answered", "follow_up", "reopened", "escalated", "unanswered"],
        weights=[45, 15, 10, 20, 10],
    )[0]
    if kind == "unanswered":
        return [(dt.timedelta(0), "customer_message")]
    steps = _ask_and_answer(rng, dt.timedelta(0))
    if kind == "escalated":
        steps.append((steps[-1][0] + rng.uniform(1, 120) * MINUTE, "human_handoff"))
    elif kind == "follow_up":
        steps += _ask_and_answer(rng, steps[-1][0] + rng.uniform(1, 60) * HOUR)
    elif kind == "reopened":  # the customer comes back after the ticket has settled
        steps += _ask_and_answer(rng, steps[-1][0] + rng.uniform(3.5, 10) * DAY)
        if rng.random() < 0.3:
            steps.append((steps[-1][0] + 20 * MINUTE, "human_handoff"))
    elif rng.random() < 0.5:
        steps.append((steps[-1][0] + rng.uniform(1, 10) * MINUTE, "resolution_confirmed"))
    return steps


def _bots(rng: random.Random, plan: SeedPlan) -> dict[str, list[str]]:
    """Which support bots each customer runs: Fin, Zendesk, or both."""
    choices = [["fin"], ["zendesk"], ["fin", "zendesk"]]
    return {c: rng.choices(choices, weights=[50, 35, 15])[0] for c in plan.customers}


@generator("support_event")
def support_events(plan: SeedPlan) -> Iterator[dict[str, Any]]:
    """Fin and Zendesk tickets: resolved, escalated, handed off late, resolved twice, reopened."""
    rng = plan.rng("support_event")
    bots = _bots(rng, plan)
    for ticket in _entities(plan, rng, median=4.0):
        bot = rng.choice(bots[ticket.customer])
        story = _fin_ticket(rng) if bot == "fin" else _zendesk_ticket(rng)
        steps = [(at, {"bot": bot, "kind": kind}) for at, kind in story]
        yield from _emit(plan, "support_event", ticket, "ticket_id", steps)


# --- chargeback_dispute (chargeflow_recovered_amount) -----------------------------------------


def _dispute(rng: random.Random) -> list[Step]:
    amount = _amount(rng, 9_000)
    steps: list[Step] = [(dt.timedelta(0), {"status": "pending", "amount": amount})]
    if rng.random() < 0.4:  # evidence submitted
        steps.append((rng.uniform(1, 5) * DAY, {"status": "pending", "amount": amount}))
    status = rng.choices(["won", "lost"], weights=[60, 40])[0]
    decided = rng.uniform(20, 75) * DAY
    # Some processors' status webhooks do not repeat the amount.
    steps.append(
        (
            decided,
            {"status": status} if rng.random() < 0.1 else {"status": status, "amount": amount},
        )
    )
    if rng.random() < 0.08:  # pre-arbitration or arbitration reverses the decision
        flipped = "lost" if status == "won" else "won"
        steps.append((decided + rng.uniform(10, 40) * DAY, {"status": flipped, "amount": amount}))
    return steps


@generator("chargeback_dispute")
def chargeback_disputes(plan: SeedPlan) -> Iterator[dict[str, Any]]:
    """Disputes opened this month, decided weeks later, a few reversed after that."""
    rng = plan.rng("chargeback_dispute")
    for dispute in _entities(plan, rng, median=1.2):
        yield from _emit(plan, "chargeback_dispute", dispute, "dispute_id", _dispute(rng))


# --- chargeback_alert (chargeflow_prevented_chargebacks) --------------------------------------


def _alert(rng: random.Random) -> list[Step]:
    answered = rng.uniform(1, 48) * HOUR
    if rng.random() < 0.7:
        steps: list[Step] = [(answered, {"outcome": "prevented"})]
        if rng.random() < 0.08:  # the issuer filed the chargeback anyway
            steps.append((answered + rng.uniform(5, 25) * DAY, {"outcome": "not_prevented"}))
        return steps
    steps = [(answered, {"outcome": "not_prevented"})]
    if rng.random() < 0.05:  # a late refund was accepted after all
        steps.append((answered + rng.uniform(1, 4) * DAY, {"outcome": "prevented"}))
    return steps


@generator("chargeback_alert")
def chargeback_alerts(plan: SeedPlan) -> Iterator[dict[str, Any]]:
    """Pre-chargeback alerts, mostly prevented by a refund, some flipping later."""
    rng = plan.rng("chargeback_alert")
    for alert in _entities(plan, rng, median=1.0):
        yield from _emit(plan, "chargeback_alert", alert, "alert_id", _alert(rng))


# --- transaction_decision and fraud_chargeback (riskified_approved_value) ---------------------


@dataclass(frozen=True)
class _Order:
    entity: _Entity
    decisions: tuple[Step, ...]
    fraud_after: dt.timedelta | None  # when a fraud chargeback comes, if one does


def _decisions(rng: random.Random, amount: str) -> tuple[Step, ...]:
    kind = rng.choices(
        ["approved", "declined", "review_approved", "review_declined"], [86, 10, 2, 2]
    )[0]
    first, final = {
        "approved": ("approved", None),
        "declined": ("declined", None),
        "review_approved": ("declined", "approved"),
        "review_declined": ("approved", "declined"),
    }[kind]
    steps: list[Step] = [(dt.timedelta(0), {"decision": first, "amount": amount})]
    if final:
        steps.append((rng.uniform(1, 6) * HOUR, {"decision": final, "amount": amount}))
    return tuple(steps)


@functools.lru_cache(maxsize=4)
def _orders(plan: SeedPlan) -> tuple[_Order, ...]:
    """The month's orders, shared by the decision and the fraud chargeback generators."""
    rng = plan.rng("transaction_decision")
    orders = []
    for order in _entities(plan, rng, median=12.0):
        decisions = _decisions(rng, _amount(rng, 8_000))
        fraud = rng.random() < 0.008 and decisions[-1][1]["decision"] == "approved"
        fraud_after = rng.uniform(7, 110) * DAY if fraud else None
        orders.append(_Order(order, decisions, fraud_after))
    return tuple(orders)


@generator("transaction_decision")
def transaction_decisions(plan: SeedPlan) -> Iterator[dict[str, Any]]:
    """Orders decided this month: mostly approved, some declined, a few reversed on review."""
    for order in _orders(plan):
        yield from _emit(plan, "transaction_decision", order.entity, "order_id", order.decisions)


@generator("fraud_chargeback")
def fraud_chargebacks(plan: SeedPlan) -> Iterator[dict[str, Any]]:
    """Fraud chargebacks on approved orders, weeks to months later, only once they happened."""
    for order in _orders(plan):
        if order.fraud_after is not None:
            steps = [(order.fraud_after, {})]
            yield from _emit(plan, "fraud_chargeback", order.entity, "order_id", steps)
