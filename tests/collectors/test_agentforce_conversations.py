"""agentforce_conversations against hand-computed windows.

The definition: docs/architecture.md, "Billable metrics"."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.collectors.common import (
    FEBRUARY,
    HOUR,
    JANUARY,
    MICROSECOND,
    History,
    at,
    compute,
    day,
    load,
)

pytestmark = pytest.mark.integration

METRIC = "agentforce_conversations"
ONE = Decimal(1)


def test_windows_are_half_open_24_hours_from_the_opening_action(engine: sa.Engine) -> None:
    h = History()
    h.chat("2025-01-10 10:00")  # opens [10th 10:00, 11th 10:00)
    h.chat("2025-01-10 18:00")
    h.chat("2025-01-11 09:59:59.999999")  # last instant of the first window
    h.chat("2025-01-11 10:00")  # exactly 24 h later: opens the second window
    h.chat("2025-01-12 09:00")
    h.chat("2025-01-12 10:00")  # exactly 24 h after the second opener: third window
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-10")): ONE,
        ("cust_a", day("2025-01-11")): ONE,
        ("cust_a", day("2025-01-12")): ONE,
    }


def test_a_conversation_that_never_pauses_opens_a_window_every_24_hours(engine: sa.Engine) -> None:
    h = History()
    for step in range(13):  # every 6 h from the 10th 00:00 to the 13th 00:00
        h.chat(at("2025-01-10 00:00") + step * 6 * HOUR)
    load(engine, h.events)
    # Openers at +0 h, +24 h, +48 h, +72 h: greedy windows, not pauses between messages.
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day(f"2025-01-{d}")): ONE for d in (10, 11, 12, 13)
    }


def test_the_next_window_opens_at_the_first_action_after_the_window(engine: sa.Engine) -> None:
    h = History()
    for step in range(5):  # every 20 h from the 10th 00:00
        h.chat(at("2025-01-10 00:00") + step * 20 * HOUR)
    load(engine, h.events)
    # 10th 00:00 opens; 10th 20:00 is inside; 11th 16:00 opens (until 12th 16:00);
    # 12th 12:00 is inside; 13th 08:00 opens.
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-10")): ONE,
        ("cust_a", day("2025-01-11")): ONE,
        ("cust_a", day("2025-01-13")): ONE,
    }


def test_only_customer_messages_and_menu_options_other_than_end_chat_qualify(
    engine: sa.Engine,
) -> None:
    h = History()
    # agent-only conversation: nothing to bill
    h.chat("2025-01-10 09:00", "agent_only", actor="agent")
    h.chat("2025-01-10 09:01", "agent_only", actor="agent", action="menu_option", option="Billing")
    # the customer only pressed End Chat
    h.chat("2025-01-10 10:00", "end_only", action="menu_option", option="End Chat")
    # End Chat opens nothing, so the message after midnight opens the window on the 11th
    h.chat("2025-01-10 23:30", "late", action="menu_option", option="End Chat")
    h.chat("2025-01-11 00:10", "late")
    # a customer menu option other than End Chat qualifies
    h.chat("2025-01-12 08:00", "menu", action="menu_option", option="Billing")
    # a menu option without an option is not End Chat; exact, case-sensitive comparison
    h.chat("2025-01-13 08:00", "no_option", action="menu_option")
    h.chat("2025-01-14 08:00", "lower", action="menu_option", option="end chat")
    # other actions of the customer do not qualify
    h.chat("2025-01-15 08:00", "typing", action="typing")
    h.chat("2025-01-15 08:00", "upper_actor", actor="Customer")
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-11")): ONE,
        ("cust_a", day("2025-01-12")): ONE,
        ("cust_a", day("2025-01-13")): ONE,
        ("cust_a", day("2025-01-14")): ONE,
    }


def test_agent_actions_do_not_extend_or_open_windows(engine: sa.Engine) -> None:
    h = History()
    h.chat("2025-01-10 10:00")
    h.chat("2025-01-11 10:00", actor="agent")  # would open a window if it qualified
    h.chat("2025-01-11 12:00")  # 26 h after the opener: opens the second window
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-10")): ONE,
        ("cust_a", day("2025-01-11")): ONE,
    }


def test_windows_chain_across_the_month_end(engine: sa.Engine) -> None:
    h = History()
    for step in range(9):  # every 20 h from Jan 29 00:00 to Feb 4 16:00
        h.chat(at("2025-01-29 00:00") + step * 20 * HOUR)
    h.chat("2025-01-31 12:00", "c2")
    h.chat("2025-02-01 11:59:59.999999", "c2")  # inside the window opened in January
    h.chat("2025-01-31 13:00", "c3")
    h.chat("2025-02-01 13:00", "c3")  # exactly 24 h later: February's window
    load(engine, h.events)
    # c1 openers: Jan 29 00:00, Jan 30 16:00, Feb 1 08:00, Feb 3 00:00, Feb 4 16:00. February has
    # to look back to Jan 29: starting the chain at Jan 31 12:00 would cover Feb 1 08:00 instead.
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-29")): ONE,
        ("cust_a", day("2025-01-30")): ONE,
        ("cust_a", day("2025-01-31")): Decimal(2),
    }
    assert compute(engine, METRIC, FEBRUARY) == {
        ("cust_a", day("2025-02-01")): Decimal(2),
        ("cust_a", day("2025-02-03")): ONE,
        ("cust_a", day("2025-02-04")): ONE,
    }


def test_long_history_before_the_period_sets_the_phase(engine: sa.Engine) -> None:
    h = History()
    # A message every 18 h from Jan 1 00:00 (hour 0) to Mar 2 18:00 (hour 1458): every other
    # message opens a window, at hours 36k. February holds k = 21..39 (Feb 1 12:00 .. Feb 28
    # 12:00); Mar 1 06:00 (hour 1422) is inside the Feb 28 window; Mar 2 00:00 (hour 1440) opens.
    # Starting the chain anywhere but at the conversation's first message shifts that phase.
    step = at("2025-01-01 00:00")
    while step <= at("2025-03-03 00:00"):
        h.chat(step)
        step += 18 * HOUR
    load(engine, h.events)
    assert sum(compute(engine, METRIC, FEBRUARY).values()) == 19
    march = (at("2025-03-01 00:00"), at("2025-04-01 00:00"))
    assert compute(engine, METRIC, march) == {("cust_a", day("2025-03-02")): ONE}


def test_the_lookback_starts_24_hours_before_the_period(engine: sa.Engine) -> None:
    h = History()
    h.chat("2025-01-31 00:00", "edge")  # exactly 24 h before February: its window ends at 00:00
    h.chat("2025-02-01 00:00", "edge")
    h.chat("2025-01-31 00:00:00.000001", "inside")  # its window covers Feb 1 00:00
    h.chat("2025-02-01 00:00", "inside")
    h.chat("2025-01-31 06:00", "early")
    h.chat("2025-02-01 05:59:59.999999", "early")
    h.chat("2025-02-01 06:00", "early")
    load(engine, h.events)
    assert compute(engine, METRIC, FEBRUARY) == {("cust_a", day("2025-02-01")): Decimal(2)}


def test_history_is_per_customer(engine: sa.Engine) -> None:
    h = History()
    h.chat("2025-01-30 20:00", "shared", customer_id="cust_b")
    h.chat("2025-01-31 10:00", "shared")
    h.chat("2025-02-01 09:00", "shared")  # inside cust_a's window from Jan 31 10:00
    load(engine, h.events)
    assert compute(engine, METRIC, FEBRUARY) == {}
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-31")): ONE,
        ("cust_b", day("2025-01-30")): ONE,
    }


def test_same_instant_actions_open_one_window(engine: sa.Engine) -> None:
    h = History()
    h.chat("2025-01-10 10:00")
    h.chat("2025-01-10 10:00", action="menu_option", option="Orders")
    h.chat("2025-01-11 10:00")
    h.chat("2025-01-11 10:00")
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-10")): ONE,
        ("cust_a", day("2025-01-11")): ONE,
    }


def test_conversations_are_per_customer_and_days_are_utc(engine: sa.Engine) -> None:
    h = History()
    h.chat("2025-01-10 10:00", "shared")
    h.chat("2025-01-10 20:00", "shared", customer_id="cust_b")  # same id, another customer
    h.chat("2025-01-10 21:00", "shared", customer_id="cust_b")
    h.chat("2025-01-31 21:00-05:00", "tz")  # Feb 1 02:00 UTC
    load(engine, h.events)
    assert compute(engine, METRIC, JANUARY) == {
        ("cust_a", day("2025-01-10")): ONE,
        ("cust_b", day("2025-01-10")): ONE,
    }
    assert compute(engine, METRIC, FEBRUARY) == {("cust_a", day("2025-02-01")): ONE}


def test_actions_after_as_of_are_not_known_yet(engine: sa.Engine) -> None:
    h = History()
    h.chat("2025-01-10 10:00")
    h.chat("2025-01-11 10:00")
    load(engine, h.events)
    as_of = at("2025-01-11 10:00") - MICROSECOND
    assert compute(engine, METRIC, JANUARY, as_of) == {("cust_a", day("2025-01-10")): ONE}
    assert compute(engine, METRIC, JANUARY, at("2025-01-11 10:00")) == {
        ("cust_a", day("2025-01-10")): ONE,
        ("cust_a", day("2025-01-11")): ONE,
    }
