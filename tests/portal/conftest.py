"""Customers for the portal tests, the portal served over loopback, and links to it."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.collectors.common import History, load
from tests.pipeline import aggregate
from usage_billing.portal import app, links, server

SECRET = "portal-test-secret-" + "x" * 24
# March 1st to 20th are over: steady customers' forecasts are hand-checkable.
CLOCK = dt.datetime(2025, 3, 21, tzinfo=dt.UTC)
# A customer id that would be markup if it were not escaped.
NASTY = '<script>alert("x")</script>&amp;|"\'acme'

__all__ = ["CLOCK", "NASTY", "SECRET", "SPIKE_DAY", "Portal", "link_query"]


def _every_day(last: dt.date) -> Iterator[dt.date]:
    day = dt.date(2025, 1, 1)
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


SPIKE_DAY = dt.date(2025, 3, 12)


def customers_history() -> History:
    """From January 1st to March 20th: cust_a, one prevented chargeback ($39) a day; cust_b,
    three Fin resolutions ($0.99) a day (settled 24 h later); NASTY, one Agentforce conversation
    ($2) a day; cust_s, two Agentforce conversations a day and twelve on SPIKE_DAY."""
    history = History("cust_a")
    for day in _every_day(dt.date(2025, 3, 20)):
        history.alert(f"{day} 10:00", f"a{day}", "prevented")
        for n in range(3):
            ticket = f"t{day}-{n}"
            history.support(f"{day} 1{n}:00", ticket, "resolution_confirmed", "fin",
                            customer_id="cust_b")  # fmt: skip
        history.chat(f"{day} 09:00", conversation=f"c{day}", customer_id=NASTY)
        for n in range(12 if day == SPIKE_DAY else 2):
            history.chat(f"{day} 08:{n:02d}", conversation=f"s{day}-{n}", customer_id="cust_s")
    return history


@pytest.fixture
def customers(engine: sa.Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The customers loaded and March aggregated, with the clock at CLOCK."""
    monkeypatch.setenv("USAGE_BILLING_NOW", CLOCK.isoformat())
    load(engine, customers_history().events)
    aggregate(database_url, "2025-03")


@pytest.fixture
def contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cust_a commits 5,000.00 from January to June."""
    path = tmp_path / "contracts.yaml"
    path.write_text(
        "contracts:\n  - customer_id: cust_a\n"
        '    commit: {amount: "5000.00", starts_on: "2025-01-01", ends_before: "2025-07-01"}\n'
    )
    monkeypatch.setenv("USAGE_CONTRACTS", str(path))


def link_query(customer: str, expires: dt.datetime | None = None, secret: str = SECRET) -> str:
    expires = expires or CLOCK + links.DEFAULT_LIFETIME
    return links.signed_query(secret.encode(), customer, expires)


class Portal:
    """The portal app on a free loopback port."""

    def __init__(self, url: str) -> None:
        self.url = url

    def page(self, customer: str, **kwargs: object) -> str:
        return f"{self.url}/?{link_query(customer, **kwargs)}"  # type: ignore[arg-type]

    def json(self, customer: str, **kwargs: object) -> str:
        return f"{self.url}/api/v1/month?{link_query(customer, **kwargs)}"  # type: ignore[arg-type]


@pytest.fixture
def portal(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Portal]:
    monkeypatch.setenv("USAGE_PORTAL_SECRET", SECRET)
    with server.running(app.create_app(engine, SECRET.encode())) as url:
        yield Portal(url)


def with_params(url: str, **changes: str) -> str:
    """`url` with some query parameters replaced."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(changes)
    return parts._replace(query=urllib.parse.urlencode(query)).geturl()
