"""The portal in headless Chromium: a seeded customer's page renders with its charts (SVG elements
carrying data), the stylesheet applies under the page's Content-Security-Policy, the browser
reports no error, and nobody else's figures are on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from scripts.chromium import Page, chromium_page
from tests.portal.conftest import NASTY, SPIKE_DAY, Portal

pytestmark = pytest.mark.e2e  # needs Debian's chromium (scripts/chromium.py)

# What each chart must hold: (CSS selector, how many at least).
CHART_MARKS = [
    ("svg.chart", 3),  # the bill, one metric's daily usage, the commit burn-down
    ("svg.chart path.band", 1),
    ("svg.chart path.billed", 2),  # the bill so far and the commit used so far
    ("svg.chart path.forecast", 2),
    ("svg.chart rect.bar", 20),  # March 1st to 20th
    ("svg.chart rect.bar-expected", 11),  # March 21st to 31st
    ("svg.chart line.commit-amount", 1),
]


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with chromium_page(tmp_path) as browser:
        yield browser


def count(page: Page, selector: str) -> int:
    return page.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length")


def points(page: Page, selector: str) -> int:
    """Vertices of the path: how much data it draws."""
    script = f"document.querySelector({json.dumps(selector)}).getAttribute('d')"
    return len(page.evaluate(script).split("L"))


@pytest.mark.usefixtures("customers", "contract")
def test_a_customers_page_renders_with_its_charts_and_nobody_elses_figures(
    portal: Portal, page: Page
) -> None:
    figures = httpx.get(portal.json("cust_a")).json()
    projected = f"${Decimal(figures['invoice']['projected_total']):,}"
    page.open(portal.page("cust_a"), ["cust_a", "Projected for March 2025", projected])
    assert page.console_errors() == []
    for selector, least in CHART_MARKS:
        assert count(page, selector) >= least, selector
    assert points(page, "path.billed") == 21  # from March 1st, 00:00 to each day's end
    assert points(page, "path.forecast") == 12  # from now to each later day's end
    assert points(page, "path.band") == 12 + 11  # upper edge out, lower edge back
    # The stylesheet applied (a blocked one would leave the band black), charts have width.
    band = page.evaluate("getComputedStyle(document.querySelector('path.band')).fill")
    assert band == "rgb(191, 219, 254)"
    widths = page.evaluate(
        "Array.from(document.querySelectorAll('svg.chart'), s => s.getBoundingClientRect().width)"
    )
    assert min(widths) > 250
    shown = page.evaluate("document.body.innerText")
    for amount in ("780.00", figures["invoice"]["projected_low"], "5000.00"):
        assert f"${Decimal(amount):,}" in shown
    other = httpx.get(portal.json("cust_b")).json()
    for text in ("cust_b", "Fin resolutions", f"${Decimal(other['invoice']['total']):,}"):
        assert text not in shown
    assert page.evaluate("document.scripts.length") == 0


@pytest.mark.usefixtures("customers")
def test_a_spike_is_marked_on_the_chart_and_listed(portal: Portal, page: Page) -> None:
    page.open(portal.page("cust_s"), ["Unusual days", "Agentforce conversations"])
    assert page.console_errors() == []
    assert count(page, "svg.chart rect.bar-spike") == 1
    title = page.evaluate("document.querySelector('rect.bar-spike title').textContent")
    assert title.startswith(f"{SPIKE_DAY}: 12, ")
    assert count(page, "svg.chart line.spike-expected") == 1
    rows = page.evaluate(
        "Array.from(document.querySelectorAll('table.spikes tbody tr'), r => r.innerText)"
    )
    assert len(rows) == 1 and "Wed Mar 12" in rows[0] and "Agentforce conversations" in rows[0]


@pytest.mark.usefixtures("customers")
def test_a_customer_id_that_looks_like_markup_stays_text(portal: Portal, page: Page) -> None:
    page.open(portal.page(NASTY), ["Projected for March 2025"])
    assert page.console_errors() == []
    assert page.evaluate("document.getElementById('customer').textContent") == NASTY
    assert page.evaluate("document.scripts.length") == 0


@pytest.mark.usefixtures("customers")
def test_a_refused_link_renders_without_errors_and_without_figures(
    portal: Portal, page: Page
) -> None:
    page.open(portal.page("cust_a").replace("customer=cust_a", "customer=cust_b"), ["cannot"])
    shown = page.evaluate("document.body.innerText")
    assert "This link cannot be opened" in shown and "$" not in shown
    # The document's own load failed with 403 (a network error Chromium logs); nothing else.
    assert all("403" in error for error in page.console_errors())
