"""Each SQL collector agrees with its Python model (tests/collectors/models.py) on random
histories around a month end, and periods split at a month or a day boundary add up to the whole.

Histories are built entity by entity (a conversation, a ticket, a dispute, ...): a start near the
end of January, then steps drawn from the distances the definitions care about (0 for ties,
exactly 24 h / 72 h and a microsecond either side), so the edge cases come up in most examples.
One database per test function: every example empties raw_metrics and loads its history through
the loader, so the required-property declarations are exercised too.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collectors.common import FEBRUARY, JANUARY, compute, load, merge, nonzero, reset
from tests.collectors.models import MODELS, Event, day

pytestmark = pytest.mark.integration

WHOLE = (JANUARY[0], FEBRUARY[1])
BASE = dt.datetime(2025, 1, 25, tzinfo=dt.UTC)
LATER = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
Scenario = tuple[list[Event], list[dt.datetime], dt.datetime]
Kind = tuple[str, st.SearchStrategy[dict]]

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

CUSTOMERS = st.sampled_from(["cust_a", "cust_b"])
ENTITIES = st.sampled_from(["k1", "k2", "k3"])
# Byte order of these differs from a dictionary order ('Z' < 'a' < 'z', '-' not ignored).
EVENT_IDS = st.text(alphabet="aZz09-_", min_size=1, max_size=4)
US = dt.timedelta(microseconds=1)


def _steps(*hours: float, nudged: tuple[float, ...] = ()) -> st.SearchStrategy[dt.timedelta]:
    """Distances between an entity's consecutive events: a microsecond, the given hours, and
    the `nudged` hours a microsecond either side."""
    steps = [US] + [dt.timedelta(hours=h) for h in hours]
    steps += [dt.timedelta(hours=h) + d for h in nudged for d in (-US, US)]
    return st.sampled_from(steps)


# Ties, exactly 24 h / 72 h and a microsecond either side come up often; other gaps now and then.
STEPS = _steps(0, 0, 0, 24, 24, 72, 72, 6, 12, 36, 48, 120, nudged=(24, 72))
# Conversations: steps below 24 h that add up to exactly 24 h, so chains run for days.
CHAT_STEPS = _steps(0, 6, 6, 6, 12, 12, 18, 24, nudged=(24,))
# First events: on whole days or hours from Jan 25 to Feb 4, sometimes a microsecond off.
STARTS = st.builds(
    lambda hours, nudge: BASE + dt.timedelta(hours=hours) + nudge * US,
    st.one_of(st.integers(0, 10).map(lambda d: 24 * d), st.integers(0, 240)),
    st.sampled_from([0, 0, 0, 1, -1]),
)
# as_of lands on a settlement edge of some event: exactly, or a microsecond either side.
EDGES = [dt.timedelta(hours=h) + us * US for h in (0, 24, 72) for us in (-1, 0, 1)]
SPLIT_DAY = st.builds(lambda d: BASE + dt.timedelta(days=d), st.integers(0, 12))
AMOUNTS = st.one_of(
    st.none(),
    st.sampled_from(["0.00", "0.01", "10.00", "99999.99"]),
    st.decimals(min_value=0, max_value=Decimal("99999.99"), places=2).map(str),
)


def _with_amount(props: dict, amount: str | None) -> dict:
    return props if amount is None else {**props, "amount": amount}


CHAT = st.fixed_dictionaries(
    {
        "actor": st.sampled_from(["customer"] * 3 + ["agent"]),
        "action": st.sampled_from(["message", "message", "menu_option", "menu_option", "note"]),
    },
    optional={"option": st.sampled_from([None, "End Chat", "Billing", "end chat"])},
)


def _support(bots: list[str], handoffs: int) -> st.SearchStrategy[dict]:
    kinds = ["ai_answer", "ai_answer", "customer_message", *["human_handoff"] * handoffs]
    return st.fixed_dictionaries(
        {
            "bot": st.sampled_from(bots),
            "kind": st.sampled_from([*kinds, "resolution_confirmed", "resolution_assumed"]),
        }
    )


DISPUTE = st.builds(
    _with_amount,
    st.fixed_dictionaries({"status": st.sampled_from(["pending", "won", "won", "lost"])}),
    AMOUNTS,
)
ALERT = st.fixed_dictionaries({"outcome": st.sampled_from(["prevented", "not_prevented"])})
DECISION = st.builds(
    _with_amount,
    st.fixed_dictionaries({"decision": st.sampled_from(["approved", "approved", "declined"])}),
    AMOUNTS,
)


@st.composite
def scenarios(
    draw: st.DrawFn,
    key: str,
    kinds: list[Kind],
    steps: st.SearchStrategy[dt.timedelta] = STEPS,
    max_steps: int = 10,
) -> Scenario:
    """Entity timelines of the given (metric, properties) kinds, keyed by property `key`, with
    unique ids in no particular order; clocks to compute at (far later, and on settlement edges
    of events, above all of each entity's last one); and a day to split periods at."""
    kind = st.sampled_from(kinds).flatmap(lambda k: st.tuples(st.just(k[0]), k[1]))
    drawn: list[tuple[str, dt.datetime, str, dict]] = []
    last_times: list[dt.datetime] = []
    owners = draw(st.lists(st.tuples(CUSTOMERS, ENTITIES), unique=True, max_size=5))
    for customer, entity in owners:
        at = draw(STARTS)
        for _ in range(draw(st.integers(1, max_steps))):
            metric, props = draw(kind)
            drawn.append((customer, at, metric, {key: entity, **props}))
            last = at
            at += draw(steps)
        last_times.append(last)
    ids = draw(st.lists(EVENT_IDS, min_size=len(drawn), max_size=len(drawn), unique=True))
    events = [
        Event(event_id, customer, metric, at, props)
        for event_id, (customer, at, metric, props) in zip(ids, drawn, strict=True)
    ]
    clocks, split = [LATER], SPLIT_DAY
    if events:
        times = st.sampled_from([e.occurred_at for e in events] + last_times * 2)
        edges = st.builds(lambda t, edge: t + edge, times, st.sampled_from(EDGES))
        clocks += draw(st.lists(edges, min_size=1, max_size=3))
        # cut through activity: the midnight after some event
        split = st.one_of(split, times.map(lambda t: day(t) + dt.timedelta(days=1)))
    return events, clocks, draw(split)


def check(engine: sa.Engine, metric: str, scenario: Scenario) -> None:
    """At every clock, SQL equals the model on the whole span and on both halves of the month
    split, which add up; at the first clock also on both halves of the day split."""
    events, clocks, split = scenario
    reset(engine)
    load(engine, events)
    model = MODELS[metric]
    splits = [(JANUARY, FEBRUARY), ((WHOLE[0], split), (split, WHOLE[1]))]
    for n, as_of in enumerate(clocks):
        whole = compute(engine, metric, WHOLE, as_of)
        assert whole == nonzero(model(events, *WHOLE, as_of)), as_of
        for left, right in splits[: 2 if n == 0 else 1]:
            parts = []
            for period in (left, right):
                part = compute(engine, metric, period, as_of)
                assert part == nonzero(model(events, *period, as_of)), (period, as_of)
                parts.append(part)
            assert merge(*parts) == whole


@SETTINGS
@given(scenario=scenarios("conversation_id", [("chat_action", CHAT)], CHAT_STEPS, max_steps=20))
def test_agentforce_conversations_matches_model(engine: sa.Engine, scenario: Scenario) -> None:
    check(engine, "agentforce_conversations", scenario)


@SETTINGS
@given(
    scenario=scenarios(
        "ticket_id", [("support_event", _support(["fin"] * 5 + ["zendesk"], handoffs=3))]
    )
)
def test_fin_resolutions_matches_model(engine: sa.Engine, scenario: Scenario) -> None:
    check(engine, "fin_resolutions", scenario)


@SETTINGS
@given(
    scenario=scenarios(
        "ticket_id", [("support_event", _support(["zendesk"] * 5 + ["fin"], handoffs=1))]
    )
)
def test_zendesk_automated_resolutions_matches_model(engine: sa.Engine, scenario: Scenario) -> None:
    check(engine, "zendesk_automated_resolutions", scenario)


@SETTINGS
@given(scenario=scenarios("dispute_id", [("chargeback_dispute", DISPUTE)]))
def test_chargeflow_recovered_amount_matches_model(engine: sa.Engine, scenario: Scenario) -> None:
    check(engine, "chargeflow_recovered_amount", scenario)


@SETTINGS
@given(scenario=scenarios("alert_id", [("chargeback_alert", ALERT)]))
def test_chargeflow_prevented_chargebacks_matches_model(
    engine: sa.Engine, scenario: Scenario
) -> None:
    check(engine, "chargeflow_prevented_chargebacks", scenario)


@SETTINGS
@given(
    scenario=scenarios(
        "order_id",
        [("transaction_decision", DECISION)] * 5 + [("fraud_chargeback", st.just({}))],
    )
)
def test_riskified_approved_value_matches_model(engine: sa.Engine, scenario: Scenario) -> None:
    check(engine, "riskified_approved_value", scenario)
