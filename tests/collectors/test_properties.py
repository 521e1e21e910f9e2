"""Each SQL collector agrees with its Python model (tests/collectors/models.py) on random
histories around a month end, and periods split at a month or day boundary add up to the whole.

One database per test function: every example empties raw_metrics and loads its history through
the loader, so the required-property declarations are exercised too.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collectors.common import FEBRUARY, JANUARY, compute, load, merge, nonzero, reset
from tests.collectors.models import MODELS, Event

WHOLE = (JANUARY[0], FEBRUARY[1])
BASE = dt.datetime(2025, 1, 27, tzinfo=dt.UTC)  # histories run from Jan 27 to about Feb 8
LATER = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

CUSTOMERS = st.sampled_from(["cust_a", "cust_b"])
# Byte order of these differs from a dictionary order ('Z' < 'a' < 'z', '-' not ignored).
EVENT_IDS = st.text(alphabet="aZz09-_", min_size=1, max_size=4)
NUDGE = st.sampled_from([0, 0, 0, 0, 1, -1])  # microseconds: just before / after a grid point


def _grid(step: dt.timedelta, steps: int) -> st.SearchStrategy[dt.datetime]:
    """Times on a grid (so exact 24 h / 72 h distances and ties are common), sometimes nudged."""
    return st.builds(
        lambda k, us: BASE + k * step + dt.timedelta(microseconds=us),
        st.integers(0, steps),
        NUDGE,
    )


TIMES = st.one_of(
    _grid(dt.timedelta(days=1), 12),
    _grid(dt.timedelta(hours=6), 12 * 4),
    _grid(dt.timedelta(minutes=30), 12 * 48),
)
# as_of lands on the settlement edges of some event: exactly, or a microsecond either side.
EDGES = [dt.timedelta(hours=h, microseconds=us) for h in (0, 24, 72) for us in (-1, 0, 1)]
SPLIT_DAY = st.builds(lambda d: BASE + dt.timedelta(days=d), st.integers(0, 12))

ChatProps = st.fixed_dictionaries(
    {
        "conversation_id": st.sampled_from(["c1", "c2", "c3"]),
        "actor": st.sampled_from(["customer", "customer", "customer", "agent"]),
        "action": st.sampled_from(["message", "message", "menu_option", "menu_option", "note"]),
    },
    optional={"option": st.sampled_from([None, "End Chat", "Billing", "end chat"])},
)


def _support(bots: list[str]) -> st.SearchStrategy[dict]:
    kinds = ["ai_answer", "ai_answer", "customer_message", "customer_message", "human_handoff"]
    return st.fixed_dictionaries(
        {
            "ticket_id": st.sampled_from(["t1", "t2", "t3"]),
            "bot": st.sampled_from(bots),
            "kind": st.sampled_from([*kinds, "resolution_confirmed", "resolution_assumed"]),
        }
    )


def _with_amount(props: dict, amount: str | None) -> dict:
    return props if amount is None else {**props, "amount": amount}


DisputeProps = st.builds(
    _with_amount,
    st.fixed_dictionaries(
        {
            "dispute_id": st.sampled_from(["d1", "d2", "d3"]),
            "status": st.sampled_from(["pending", "won", "won", "lost"]),
        }
    ),
    AMOUNTS,
)
AlertProps = st.fixed_dictionaries(
    {
        "alert_id": st.sampled_from(["a1", "a2", "a3"]),
        "outcome": st.sampled_from(["prevented", "not_prevented"]),
    }
)
DecisionProps = st.builds(
    _with_amount,
    st.fixed_dictionaries(
        {
            "order_id": st.sampled_from(["o1", "o2", "o3", "o4"]),
            "decision": st.sampled_from(["approved", "approved", "declined"]),
        }
    ),
    AMOUNTS,
)
FraudProps = st.fixed_dictionaries({"order_id": st.sampled_from(["o1", "o2", "o3", "o4"])})


@st.composite
def scenarios(
    draw: st.DrawFn, kinds: list[tuple[str, st.SearchStrategy[dict]]], max_size: int
) -> tuple[list[Event], dt.datetime, dt.datetime]:
    """Random events of the given (metric, properties) kinds with unique, unordered ids; an
    as_of (far later, on a grid, or on an event's settlement edge); a day to split periods at."""
    kind = st.sampled_from(kinds).flatmap(lambda k: st.tuples(st.just(k[0]), k[1]))
    size = draw(st.integers(0, max_size))
    drawn = draw(st.lists(st.tuples(CUSTOMERS, TIMES, kind), min_size=size, max_size=size))
    ids = draw(st.lists(EVENT_IDS, min_size=size, max_size=size, unique=True))
    events = [
        Event(event_id, customer, metric, at, props)
        for event_id, (customer, at, (metric, props)) in zip(ids, drawn, strict=True)
    ]
    choices = [st.just(LATER), _grid(dt.timedelta(hours=3), 12 * 8)]
    if events:
        edge = st.tuples(st.sampled_from(events), st.sampled_from(EDGES))
        choices.append(edge.map(lambda pair: pair[0].occurred_at + pair[1]))
    as_of = draw(st.one_of(*choices))
    return events, as_of, draw(SPLIT_DAY)


def check(
    engine: sa.Engine,
    metric: str,
    events: list[Event],
    as_of: dt.datetime,
    split: dt.datetime,
) -> None:
    """SQL equals the model on the whole span and on both halves of two splits, which add up."""
    reset(engine)
    load(engine, events)
    model = MODELS[metric]
    whole = compute(engine, metric, WHOLE, as_of)
    assert whole == nonzero(model(events, *WHOLE, as_of))
    for left, right in [(JANUARY, FEBRUARY), ((WHOLE[0], split), (split, WHOLE[1]))]:
        parts = []
        for period in (left, right):
            part = compute(engine, metric, period, as_of)
            assert part == nonzero(model(events, *period, as_of)), period
            parts.append(part)
        assert merge(*parts) == whole


@SETTINGS
@given(
    events=histories([("chat_action", ChatProps)], FINE_TIMES, 40),
    as_of=AS_OF,
    split=SPLIT_DAY,
)
def test_agentforce_conversations_matches_model(
    engine: sa.Engine, events: list[Event], as_of: dt.datetime, split: dt.datetime
) -> None:
    check(engine, "agentforce_conversations", events, as_of, split)


@SETTINGS
@given(
    events=histories(
        [("support_event", _support(["fin", "fin", "fin", "zendesk"]))], FINE_TIMES, 30
    ),
    as_of=AS_OF,
    split=SPLIT_DAY,
)
def test_fin_resolutions_matches_model(
    engine: sa.Engine, events: list[Event], as_of: dt.datetime, split: dt.datetime
) -> None:
    check(engine, "fin_resolutions", events, as_of, split)


@SETTINGS
@given(
    events=histories(
        [("support_event", _support(["zendesk", "zendesk", "zendesk", "fin"]))], FINE_TIMES, 30
    ),
    as_of=AS_OF,
    split=SPLIT_DAY,
)
def test_zendesk_automated_resolutions_matches_model(
    engine: sa.Engine, events: list[Event], as_of: dt.datetime, split: dt.datetime
) -> None:
    check(engine, "zendesk_automated_resolutions", events, as_of, split)


@SETTINGS
@given(
    events=histories([("chargeback_dispute", DisputeProps)], COARSE_TIMES, 25),
    as_of=AS_OF,
    split=SPLIT_DAY,
)
def test_chargeflow_recovered_amount_matches_model(
    engine: sa.Engine, events: list[Event], as_of: dt.datetime, split: dt.datetime
) -> None:
    check(engine, "chargeflow_recovered_amount", events, as_of, split)


@SETTINGS
@given(
    events=histories([("chargeback_alert", AlertProps)], COARSE_TIMES, 25),
    as_of=AS_OF,
    split=SPLIT_DAY,
)
def test_chargeflow_prevented_chargebacks_matches_model(
    engine: sa.Engine, events: list[Event], as_of: dt.datetime, split: dt.datetime
) -> None:
    check(engine, "chargeflow_prevented_chargebacks", events, as_of, split)


@SETTINGS
@given(
    events=histories(
        [("transaction_decision", DecisionProps)] * 3 + [("fraud_chargeback", FraudProps)],
        COARSE_TIMES,
        25,
    ),
    as_of=AS_OF,
    split=SPLIT_DAY,
)
def test_riskified_approved_value_matches_model(
    engine: sa.Engine, events: list[Event], as_of: dt.datetime, split: dt.datetime
) -> None:
    check(engine, "riskified_approved_value", events, as_of, split)
