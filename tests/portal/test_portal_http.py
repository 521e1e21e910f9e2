"""The portal over plain HTTP: the signature rules (missing, expired, tampered customer, tampered
expiry, wrong key, another customer's link, path tricks), what a page shows and never shows, the
JSON endpoint's figures, escaping, and a secret that never reaches a log."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
from decimal import Decimal

import httpx
import pytest

from tests.portal.conftest import CLOCK, NASTY, SECRET, Portal, link_query, with_params
from usage_billing import cli

pytestmark = pytest.mark.integration

D = Decimal


def get(url: str, **kwargs: object) -> httpx.Response:
    return httpx.get(url, timeout=30, **kwargs)  # type: ignore[arg-type]


def dollars(text: str) -> str:
    """A decimal string as the page shows money: 1209.00 -> $1,209.00."""
    return f"${D(text):,}"


@pytest.mark.usefixtures("customers", "contract")
def test_a_link_opens_its_customers_month_and_the_json_has_the_same_figures(
    portal: Portal,
) -> None:
    page = get(portal.page("cust_a"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    figures = get(portal.json("cust_a")).json()
    assert (figures["customer_id"], figures["month"], figures["currency"]) == (
        "cust_a", "2025-03", "USD",
    )  # fmt: skip
    assert figures["as_of"] == CLOCK.isoformat()
    invoice = figures["invoice"]
    # 20 prevented chargebacks so far at $39, one a day to 31 by the month's end.
    assert invoice["line_items"] == [
        {
            "billable_metric": "chargeflow_prevented_chargebacks",
            "quantity": "20",
            "amount": "780.00",
        }
    ]
    assert (invoice["total"], invoice["projected_total"]) == ("780.00", "1209.00")
    [forecast] = figures["forecast"]
    assert (forecast["month_to_date"], forecast["projected"]) == ("20", "31")
    assert forecast["projected_amount"] == "1209.00"
    assert forecast["low_amount"] == invoice["projected_low"]
    assert forecast["high_amount"] == invoice["projected_high"]
    daily = figures["daily"]
    assert len(daily) == 31
    assert daily[19] == {
        "day": "2025-03-20", "complete": True, "billed": "780.00", "expected": "780.00",
        "low": "780.00", "high": "780.00",
    }  # fmt: skip
    assert daily[20]["billed"] is None and daily[20]["expected"] == "819.00"
    assert (daily[30]["expected"], daily[30]["low"], daily[30]["high"]) == (
        "1209.00", invoice["projected_low"], invoice["projected_high"],
    )  # fmt: skip
    [commit] = figures["commits"]
    assert (commit["commit_amount"], commit["starts_on"]) == ("5000.00", "2025-01-01")
    assert figures["spikes"] == []
    assert figures["link_expires_at"] == (CLOCK + dt.timedelta(days=30)).isoformat()

    for amount in ("780.00", "1209.00", invoice["projected_low"], invoice["projected_high"]):
        assert dollars(amount) in page.text
    assert "Prevented chargebacks" not in page.text  # the name is the metric's own
    assert "Chargeflow prevented chargebacks" in page.text
    assert page.text.count("<svg") == 3  # the bill, the daily usage, the commit burn-down
    # Nobody else's figures: cust_b's Fin resolutions, the other customer ids.
    for other in ("cust_b", "Fin resolutions", "fin_resolutions", "Agentforce", "acme"):
        assert other not in page.text
    assert "cust_b" not in json.dumps(figures)


@pytest.mark.usefixtures("customers")
def test_another_customers_link_shows_only_that_customer(portal: Portal) -> None:
    figures = get(portal.json("cust_b")).json()
    assert figures["customer_id"] == "cust_b"
    assert [f["billable_metric"] for f in figures["forecast"]] == ["fin_resolutions"]
    assert figures["commits"] == []
    text = json.dumps(figures)
    assert "cust_a" not in text and "chargeflow" not in text
    # cust_b's link with cust_a's name in it: refused, and nothing of either customer shown.
    swapped = with_params(portal.json("cust_b"), customer="cust_a")
    refused = get(swapped)
    assert refused.status_code == 403 and refused.json() == {"error": "forbidden"}


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text[:200]
    assert "cust_a" not in response.text and "780" not in response.text


@pytest.mark.usefixtures("customers")
def test_missing_expired_tampered_or_foreign_links_are_403(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = portal.page("cust_a")
    assert get(good).status_code == 200
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(good).query))
    for endpoint in ("/", "/api/v1/month"):
        base = portal.url + endpoint
        _refused(get(base))  # no link at all
        for missing in ("customer", "expires", "signature"):
            rest = {k: v for k, v in query.items() if k != missing}
            _refused(get(f"{base}?{urllib.parse.urlencode(rest)}"))
        _refused(get(f"{base}?{urllib.parse.urlencode({**query, 'customer': 'cust_b'})}"))
        longer = str(int(query["expires"]) + 86400 * 365)
        _refused(get(f"{base}?{urllib.parse.urlencode({**query, 'expires': longer})}"))
        forged = link_query("cust_a", secret="another-secret-" + "y" * 30)
        _refused(get(f"{base}?{forged}"))
        expired = link_query("cust_a", expires=CLOCK - dt.timedelta(seconds=1))
        _refused(get(f"{base}?{expired}"))
    # A link that was good expires with the clock.
    monkeypatch.setenv("USAGE_BILLING_NOW", (CLOCK + dt.timedelta(days=31)).isoformat())
    _refused(get(good))


@pytest.mark.usefixtures("customers")
def test_path_tricks_find_nothing(portal: Portal) -> None:
    good = urllib.parse.urlsplit(portal.page("cust_a")).query
    swap = f"{good}&customer=cust_b"  # a second customer after the signed one
    for path, status in [
        (f"/?{swap}", 403),
        (f"/?customer=cust_b&{good}", 403),
        (f"/api/v1/month?{swap}", 403),
        (f"/%2e%2e/?{good}", 404),
        (f"/api/v1/month/?{good}", 404),
        (f"/api/v1/month/..%2f..%2f?{good}", 404),
        (f"/static/../app.py?{good}", 404),
        ("/static/..%2fapp.py", 404),
        ("/static/%2e%2e/links.py", 404),
        ("/static/../../usage_billing/config.py", 404),
        (f"//?{good.replace('cust_a', 'cust_b')}", 404),
        (f"/?{good.replace('customer=', 'customer%00=')}", 403),
    ]:
        response = get(portal.url + path)
        assert response.status_code == status, (path, response.status_code)
        assert "780" not in response.text and "SECRET" not in response.text
    assert httpx.post(portal.page("cust_a")).status_code == 405
    css = get(portal.url + "/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


@pytest.mark.usefixtures("customers")
def test_customer_ids_and_names_are_escaped(portal: Portal) -> None:
    page = get(portal.page(NASTY))
    assert page.status_code == 200
    assert "<script" not in page.text  # no script at all, least of all the customer's
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;amp;|&#34;&#39;acme" in page.text
    assert get(portal.json(NASTY)).json()["customer_id"] == NASTY


@pytest.mark.usefixtures("customers")
def test_every_response_keeps_the_link_and_the_page_to_itself(portal: Portal) -> None:
    for url in (portal.page("cust_a"), portal.json("cust_a"), portal.url + "/"):
        headers = get(url).headers
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert get(portal.json("cust_a")).headers["access-control-allow-origin"] == "*"


# --- the command --------------------------------------------------------------------------------


def test_no_secret_no_portal_and_no_links(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("USAGE_PORTAL_SECRET", raising=False)
    for argv in (["portal", "--port", "0"], ["portal", "link", "--customer", "cust_a"]):
        assert cli.main(argv) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith("usage-billing: USAGE_PORTAL_SECRET is not set")
    monkeypatch.setenv("USAGE_PORTAL_SECRET", "tiny-key-9")
    assert cli.main(["portal", "link", "--customer", "cust_a"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "USAGE_PORTAL_SECRET is shorter than 32 characters" in line
    assert "tiny-key-9" not in line  # never the secret itself


@pytest.mark.usefixtures("customers")
def test_portal_link_prints_a_link_that_works_and_refuses_what_cannot(
    portal: Portal, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["portal", "link", "--base-url", portal.url]
    assert cli.main([*base, "--customer", "cust_a", "--expires-in", "2h"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith(portal.url + "/?customer=cust_a&expires=")
    assert get(url).status_code == 200
    expires = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["expires"]
    assert int(expires) == int((CLOCK + dt.timedelta(hours=2)).timestamp())
    for argv, problem in [
        (["--customer", "nobody"], "unknown customer 'nobody'"),
        (["--customer", "cust_a", "--expires-in", "400d"], "at most 366 days"),
        (["--customer", "cust_a", "--expires-in", "soon"], "not a duration"),
    ]:
        assert cli.main([*base, *argv]) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert problem in line


@pytest.mark.usefixtures("customers")
def test_the_served_portal_logs_requests_but_never_a_secret_or_a_link(database_url: str) -> None:
    environment = {
        **os.environ,
        "USAGE_PORTAL_SECRET": SECRET,
        "USAGE_DATABASE_URL": database_url,
        "USAGE_BILLING_NOW": CLOCK.isoformat(),
    }
    command = [sys.executable, "-m", "usage_billing.cli", "portal", "--port", "0"]
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.fullmatch(r"Customer portal listening on (http://127\.0\.0\.1:\d+)\n", first)
        assert match, first
        url = match[1]
        good = f"{url}/?{link_query('cust_a')}"
        assert get(good).status_code == 200
        assert get(f"{url}/api/v1/month?{link_query('cust_a')}").status_code == 200
        assert get(with_params(good, customer="cust_b")).status_code == 403
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    logged = first + out + err
    signature = dict(urllib.parse.parse_qsl(link_query("cust_a")))["signature"]
    assert "GET / 200" in logged and "GET /api/v1/month 200" in logged
    assert "GET / 403" in logged and "refused a link on /: signature does not match" in logged
    for secret in (SECRET, signature, "expires=", "customer=cust"):
        assert secret not in logged
