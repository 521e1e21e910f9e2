"""Signed links: what verifies, and every way one does not (the HTTP tests drive the same rules
through the server)."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usage_billing.portal import links

pytestmark = pytest.mark.unit

SECRET = b"k" * 32
NOW = dt.datetime(2025, 3, 20, 12, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=30)


def query(customer: str = "cust_a", expires: dt.datetime = LATER, secret: bytes = SECRET):
    return urllib.parse.parse_qsl(links.signed_query(secret, customer, expires))


def test_a_signed_link_grants_its_customer_until_it_expires() -> None:
    grant = links.verify(SECRET, query(), NOW)
    assert grant == links.Grant("cust_a", LATER)
    with pytest.raises(links.Refused, match="expired"):
        links.verify(SECRET, query(), LATER)  # the expiry itself is too late


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda q: q[:1] + q[2:], "once each"),  # no expires
        (lambda q: q[:2], "once each"),  # no signature
        (lambda q: [], "once each"),
        (lambda q: [*q, ("customer", "cust_b")], "once each"),  # a second customer
        (lambda q: [("customer", "cust_b"), *q], "once each"),
        (lambda q: [("customer", "cust_b"), *q[1:]], "signature"),  # another customer
        (lambda q: [q[0], ("expires", str(int(q[1][1]) + 86400)), q[2]], "signature"),
        (lambda q: [q[0], ("expires", f"0{q[1][1]}"), q[2]], "malformed"),
        (lambda q: [q[0], ("expires", "+" + q[1][1]), q[2]], "malformed"),
        (lambda q: [q[0], ("expires", "9" * 40), q[2]], "malformed"),
        (lambda q: [*q[:2], ("signature", q[2][1][:-1])], "signature"),
        (lambda q: [*q[:2], ("signature", q[2][1] + "=")], "signature"),
        (lambda q: [*q[:2], ("signature", q[2][1].upper())], "signature"),
        (lambda q: [*q[:2], ("signature", "é" * 43)], "signature"),
        (lambda q: [("customer", ""), *q[1:]], "malformed"),
        (lambda q: [("customer", "x" * 257), *q[1:]], "malformed"),
    ],
)
def test_a_changed_or_incomplete_link_is_refused(change, reason: str) -> None:
    with pytest.raises(links.Refused, match=reason):
        links.verify(SECRET, change(query()), NOW)


def test_another_key_or_an_expired_link_is_refused() -> None:
    with pytest.raises(links.Refused, match="signature"):
        links.verify(SECRET, query(secret=b"x" * 32), NOW)
    with pytest.raises(links.Refused, match="expired"):
        links.verify(SECRET, query(expires=NOW - dt.timedelta(seconds=1)), NOW)


def test_unrelated_parameters_change_nothing() -> None:
    # Mail clients append tracking parameters; they are not part of the grant.
    grant = links.verify(SECRET, [*query(), ("utm_source", "mail")], NOW)
    assert grant.customer_id == "cust_a"


@given(st.text(min_size=1, max_size=256), st.text(min_size=1, max_size=256))
def test_any_customer_id_round_trips_and_signs_only_itself(mine: str, other: str) -> None:
    pairs = query(mine)
    assert links.verify(SECRET, pairs, NOW).customer_id == mine
    if other != mine:
        with pytest.raises(links.Refused):
            links.verify(SECRET, [("customer", other), *pairs[1:]], NOW)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 12 * 3600),
        ("90m", 90 * 60),
        ("3600s", 3600),
        ("366d", 366 * 86400),
    ],
)
def test_lifetimes(text: str, seconds: int) -> None:
    assert links.lifetime(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0d", "367d", "-1d", "1w", "1.5d", "d", "30"])
def test_lifetimes_that_do_not_work(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|366 days"):
        links.lifetime(text)
