"""Signed links: the only way into the portal.

A link carries a customer id and an expiry (Unix seconds), and an HMAC-SHA256 over both keyed with
`USAGE_PORTAL_SECRET`:

    /?customer=<id>&expires=<unix seconds>&signature=<base64url of the HMAC, unpadded>

The signed message is `usage-billing portal v1`, the expiry and the customer id on lines of their
own (the expiry is digits only, so no two (customer, expiry) pairs share a message). `verify`
returns the grant only when each of the three parameters appears exactly once, the signature
matches (compared in constant time) and the expiry is still ahead; the page then shows that
customer and nobody else. Every refusal is the same to the client (403); its reason is for the
log, which never holds a signature or a whole link.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

VERSION = "usage-billing portal v1"
DEFAULT_LIFETIME = dt.timedelta(days=30)
MAX_LIFETIME = dt.timedelta(days=366)
MAX_CUSTOMER_ID = 256  # what the loader accepts as an identifier
SIGNED = ("customer", "expires", "signature")
_DIGITS = re.compile(r"[0-9]{1,10}")  # Unix seconds up to the year 2286
_LIFETIME = re.compile(r"([0-9]{1,6})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Refused(Exception):
    """Not a valid link; the message says why, for the log only."""


@dataclass(frozen=True)
class Grant:
    """What a valid link lets its holder see: one customer, until the expiry."""

    customer_id: str
    expires: dt.datetime


def _signature(secret: bytes, customer_id: str, expires: int) -> str:
    message = f"{VERSION}\n{expires}\n{customer_id}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_query(secret: bytes, customer_id: str, expires: dt.datetime) -> str:
    """The query string of a link for `customer_id` valid until `expires`."""
    seconds = int(expires.timestamp())
    parameters = {
        "customer": customer_id,
        "expires": str(seconds),
        "signature": _signature(secret, customer_id, seconds),
    }
    return urllib.parse.urlencode(parameters, quote_via=urllib.parse.quote)


def link(base_url: str, secret: bytes, customer_id: str, expires: dt.datetime) -> str:
    """The page's URL for `customer_id` (the JSON endpoint takes the same query)."""
    return f"{base_url.rstrip('/')}/?{signed_query(secret, customer_id, expires)}"


def lifetime(text: str) -> dt.timedelta:
    """`30d`, `12h`, `90m` or `3600s`; ValueError unless positive and at most MAX_LIFETIME."""
    match = _LIFETIME.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m or 3600s")
    value = dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
    if not dt.timedelta(0) < value <= MAX_LIFETIME:
        raise ValueError(f"{text!r}: a link lives more than 0 seconds and at most 366 days")
    return value


def verify(secret: bytes, query: Iterable[tuple[str, str]], now: dt.datetime) -> Grant:
    """The grant of a link's query parameters (every pair, repeats included); Refused unless
    each signed parameter appears once, the signature matches and the link has not expired."""
    values: dict[str, list[str]] = {name: [] for name in SIGNED}
    for name, value in query:
        if name in values:
            values[name].append(value)
    if any(len(found) != 1 for found in values.values()):
        raise Refused("the customer, expires and signature parameters must appear once each")
    customer_id, expires, given = (values[name][0] for name in SIGNED)
    if not _DIGITS.fullmatch(expires) or not 0 < len(customer_id) <= MAX_CUSTOMER_ID:
        raise Refused("malformed customer or expiry")
    expected = _signature(secret, customer_id, int(expires))
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass")):
        raise Refused("signature does not match")
    expiry = dt.datetime.fromtimestamp(int(expires), dt.UTC)
    if expiry <= now:
        raise Refused("expired")
    return Grant(customer_id, expiry)
