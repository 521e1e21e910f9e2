"""Configuration from the environment, checked before anything runs.

Every setting is an environment variable (the table in docs/architecture.md). A value that cannot
work stops the command, or the Dagster code location, with one line that names the variable; nothing
is sent anywhere first. Local mode (neither `METRONOME_BASE_URL` nor `METRONOME_BEARER_TOKEN` set)
talks to the local sandbox with a fixed dev token, and that token never leaves loopback; a real
token never goes to a default URL.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LOCAL_BILLING_API_URL = "http://127.0.0.1:8787"
"""Where local mode runs the sandbox (started on demand, like the embedded database)."""

LOCAL_DEV_TOKEN = "sandbox-dev-token"
"""The bearer token of local mode; the sandbox accepts it when it is given no other."""


class ConfigurationError(ValueError):
    """A setting that cannot work; the message is one line naming the variable to fix."""


@dataclass(frozen=True)
class BillingApiSettings:
    """Where the billing API is and how to authenticate; `local` means the local sandbox."""

    base_url: str
    bearer_token: str = field(repr=False)
    local: bool = False


def _get(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value; unset and empty are the same."""
    return environ.get(name) or None


def is_loopback(url: str) -> bool:
    """True when the URL's host is this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_http_url(name: str, value: str) -> str:
    """`value` when it is an http(s) URL with a host; ConfigurationError naming `name` if not."""
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name}={value!r} is not an http(s) URL with a host")
    return value


def billing_api_settings(environ: Mapping[str, str] | None = None) -> BillingApiSettings:
    """The billing API from `METRONOME_BASE_URL` / `METRONOME_BEARER_TOKEN`, or local mode."""
    environ = os.environ if environ is None else environ
    url = _get(environ, "METRONOME_BASE_URL")
    token = _get(environ, "METRONOME_BEARER_TOKEN")
    if url is None and token is None:
        return BillingApiSettings(LOCAL_BILLING_API_URL, LOCAL_DEV_TOKEN, local=True)
    if url is None:
        raise ConfigurationError(
            "METRONOME_BEARER_TOKEN is set but METRONOME_BASE_URL is not: set METRONOME_BASE_URL "
            "to your billing API (a real token is never sent to a default URL)"
        )
    url = check_http_url("METRONOME_BASE_URL", url).rstrip("/")
    if token is None:
        if not is_loopback(url):
            raise ConfigurationError(
                f"METRONOME_BASE_URL={url} is not on this machine: set METRONOME_BEARER_TOKEN "
                "(the dev token never leaves loopback)"
            )
        token = LOCAL_DEV_TOKEN
    return BillingApiSettings(url, token)


def pinned_now(environ: Mapping[str, str] | None = None) -> dt.datetime | None:
    """`USAGE_BILLING_NOW` as an aware UTC datetime, None when unset."""
    environ = os.environ if environ is None else environ
    pinned = _get(environ, "USAGE_BILLING_NOW")
    if pinned is None:
        return None
    try:
        value = dt.datetime.fromisoformat(pinned)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ConfigurationError(
            f"USAGE_BILLING_NOW={pinned!r} is not ISO 8601 with a UTC offset "
            "(e.g. 2025-02-01T00:00:00+00:00)"
        )
    return value.astimezone(dt.UTC)


PORTAL_SECRET_MIN_LENGTH = 32


def portal_secret(environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key of the customer portal's signed links, `USAGE_PORTAL_SECRET`;
    ConfigurationError naming the variable when it is unset or too short to be a key."""
    environ = os.environ if environ is None else environ
    secret = _get(environ, "USAGE_PORTAL_SECRET")
    how = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if secret is None:
        raise ConfigurationError(
            f"USAGE_PORTAL_SECRET is not set: the customer portal signs its links with it ({how})"
        )
    if len(secret) < PORTAL_SECRET_MIN_LENGTH:
        raise ConfigurationError(
            f"USAGE_PORTAL_SECRET is shorter than {PORTAL_SECRET_MIN_LENGTH} characters: too "
            f"easy to guess for the key of the portal's links ({how})"
        )
    return secret.encode()


def _check_database_url(environ: Mapping[str, str], name: str) -> None:
    value = _get(environ, name)
    if value is None:
        return
    import sqlalchemy as sa  # only when a URL is set: the rest of the checks need no driver

    try:
        url = sa.make_url(value)
    except sa.exc.ArgumentError:
        url = None
    if url is None or url.get_backend_name() != "postgresql" or not url.database:
        raise ConfigurationError(
            f"{name} is not a PostgreSQL URL with a database "
            "(e.g. postgresql://user@127.0.0.1:5432/usage_billing)"
        )


def _check_file(environ: Mapping[str, str], name: str) -> None:
    value = _get(environ, name)
    if value is not None and not Path(value).is_file():
        raise ConfigurationError(f"{name}={value!r} is not a readable file")


def check(environ: Mapping[str, str] | None = None) -> BillingApiSettings:
    """Check every setting at once; return the billing API's. ConfigurationError on the first
    setting that cannot work."""
    environ = os.environ if environ is None else environ
    _check_database_url(environ, "USAGE_DATABASE_URL")
    _check_database_url(environ, "DAGSTER_PG_URL")
    pinned_now(environ)
    webhook = _get(environ, "USAGE_ALERTS_WEBHOOK_URL")
    if webhook is not None:
        check_http_url("USAGE_ALERTS_WEBHOOK_URL", webhook)
    for name in ("USAGE_RATE_CARD", "USAGE_CONTRACTS"):
        _check_file(environ, name)
    if _get(environ, "USAGE_PORTAL_SECRET") is not None:
        portal_secret(environ)  # a weak key stops everything, like any malformed setting
    return billing_api_settings(environ)
