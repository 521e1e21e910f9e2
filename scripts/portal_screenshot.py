"""Save the README screenshot of the customer portal: one customer's month, with a spike, the
forecast band and a commit running out.

    python scripts/portal_screenshot.py [--out docs/images] [--server-url URL]

In a scratch environment (as scripts/screenshots.py makes one: a temporary USAGE_BILLING_HOME with
an embedded PostgreSQL, or a scratch database on --server-url, removed afterwards) and with the
pipeline clock pinned to a Thursday afternoon, it draws two customers' January-to-March usage from
`usage_billing.synthetic.profiles` (weekly patterns, trend, noise; one labeled four-fold spike of
Agentforce conversations on March 12th), runs the three months through Dagster against a Metronome
sandbox as `usage-billing materialize` does, serves the portal and saves the page of one customer
from headless Chromium, full height.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # for scripts.*

from metronome_sandbox.server import running_sandbox  # noqa: E402
from metronome_sandbox.settings import SandboxSettings  # noqa: E402
from scripts import chromium  # noqa: E402
from scripts.chromium import chromium_page  # noqa: E402
from scripts.screenshots import scratch_environment  # noqa: E402
from usage_billing import db, loader  # noqa: E402
from usage_billing.cli.materialize import materialize  # noqa: E402
from usage_billing.portal import app, links, server  # noqa: E402
from usage_billing.synthetic import profiles  # noqa: E402
from usage_billing.synthetic.plan import SeedPlan  # noqa: E402

CLOCK = dt.datetime(2025, 3, 20, 15, 0, tzinfo=dt.UTC)  # a Thursday afternoon
MONTHS = ("2025-01", "2025-02", "2025-03")
START, END = dt.date(2025, 1, 1), dt.date(2025, 4, 1)
CUSTOMER = "northwind-retail"
OTHER = "contoso-travel"
SPIKE_DAY = dt.date(2025, 3, 12)
WIDTH = 1280
CONTRACTS = f"""contracts:
  - customer_id: {CUSTOMER}
    commit: {{amount: "36000.00", starts_on: "2025-01-01", ends_before: "2025-07-01"}}
"""


def _profile(
    customer: str, metric: str, level: float, shape: str, growth: float
) -> profiles.UsageProfile:
    """A steady profile: `level` a day, a weekly `shape`, `growth` a month, 8 % noise."""
    weekly = profiles.WEEKLY_SHAPES[shape]
    daily_growth = growth / 30
    return profiles.UsageProfile(
        customer_id=customer,
        billable_metric=metric,
        level=level,
        anchor=START,
        weekly=weekly,
        growth=(daily_growth, daily_growth),
        turn=END,
        noise=0.08,
        starts_on=None,
        stops_on=None,
        spike_rate=0.0,
        seed=3,
    )


def usage_profiles() -> list[profiles.UsageProfile]:
    """Northwind uses four products and grows; Contoso uses one (its page must not show here)."""
    return [
        _profile(CUSTOMER, "agentforce_conversations", 38, "business", 0.06),
        _profile(CUSTOMER, "fin_resolutions", 70, "flat", 0.02),
        _profile(CUSTOMER, "chargeflow_prevented_chargebacks", 2.2, "weekend", 0.0),
        _profile(CUSTOMER, "events_sent", 420_000, "business", 0.04),
        _profile(OTHER, "fin_resolutions", 300, "flat", 0.0),
    ]


def spike() -> profiles.UsageProfile:
    """Three usual days more of Agentforce conversations, on SPIKE_DAY only: a profile that
    starts and stops that day (profiles ramp a new customer up from 40 % on its first day)."""
    usual = _profile(CUSTOMER, "agentforce_conversations", 38, "business", 0.06)
    return dataclasses.replace(
        usual, level=usual.level * 3 / 0.4, starts_on=SPIKE_DAY,
        stops_on=SPIKE_DAY + dt.timedelta(days=1),
    )  # fmt: skip


def load_history() -> None:
    engine = db.create_engine()
    db.init_schema(engine)
    start = dt.datetime.combine(START, dt.time(), dt.UTC)
    end = dt.datetime.combine(END, dt.time(), dt.UTC)
    lines = []
    for number, profile in enumerate([*usage_profiles(), spike()]):
        plan = SeedPlan("portal", (), start, end, CLOCK, seed=10 + number)
        lines.extend(json.dumps(doc) for doc in profiles.raw_documents(plan, profile))
    result = loader.load_lines(engine, lines, source="portal-screenshot")
    print(f"loaded {result.loaded} raw rows ({result.quarantined} quarantined)")
    engine.dispose()


def run_months(scratch: Path) -> None:
    settings = SandboxSettings(port=0, database_url=db.database_url(), now=CLOCK)
    with running_sandbox(settings) as api:
        os.environ["METRONOME_BASE_URL"] = api
        for month in MONTHS:
            outcome = materialize(month, log_level="WARNING")
            print(f"{month}: run {outcome.run_id} {'succeeded' if outcome.success else 'FAILED'}")
            if not outcome.success:
                raise RuntimeError(f"{month}: steps failed: {outcome.failed_steps}")


def shoot(scratch: Path, out: Path) -> None:
    secret = secrets.token_urlsafe(32).encode()
    engine = db.create_engine()
    with server.running(app.create_app(engine, secret)) as url, chromium_page(scratch) as page:
        link = links.link(url, secret, CUSTOMER, CLOCK + dt.timedelta(days=30))
        page.resize(WIDTH, 1000)
        page.open(link, ["Projected for March 2025", "Unusual days", "Commit burn-down"])
        errors = page.console_errors()
        if errors:
            raise RuntimeError(f"the page reported errors: {errors}")
        height = int(page.evaluate("document.documentElement.scrollHeight"))
        page.resize(WIDTH, height)
        page.settle(what="the page at full height")
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(out / "portal.png")
        print(f"saved {out / 'portal.png'} ({WIDTH}x{height})")
    engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "images")
    parser.add_argument("--server-url", help="a PostgreSQL URL allowed to create databases")
    args = parser.parse_args(argv)
    if reason := chromium.missing():
        print(reason, file=sys.stderr)
        return 2
    with scratch_environment(args.server_url) as scratch:
        os.environ["USAGE_BILLING_NOW"] = CLOCK.isoformat()
        contracts = scratch / "contracts.yaml"
        contracts.write_text(CONTRACTS)
        os.environ["USAGE_CONTRACTS"] = str(contracts)
        load_history()
        run_months(scratch)
        shoot(scratch, args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
