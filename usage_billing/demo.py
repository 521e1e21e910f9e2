"""`usage-billing demo`: the whole pipeline on the embedded default, end to end."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator

from resources import billing_api as billing_api_client
from usage_billing import clock, db, instance, seed
from usage_billing.materialize import materialize
from usage_billing.reconcile import reconcile, render

SANDBOX_PORT = 8787


def demo_months(now: dt.datetime) -> list[str]:
    """The previous and the current month."""
    previous = (now.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return [previous, now.strftime("%Y-%m")]


@contextlib.contextmanager
def billing_api() -> Iterator[str]:
    """METRONOME_BASE_URL when set; otherwise a sandbox on 127.0.0.1:8787 (a free port if taken)."""
    if os.environ.get("METRONOME_BASE_URL"):
        yield os.environ["METRONOME_BASE_URL"]
        return
    from metronome_sandbox.server import running_sandbox
    from metronome_sandbox.settings import SandboxSettings

    try:
        sandbox = running_sandbox(
            SandboxSettings(port=SANDBOX_PORT, database_url=db.database_url())
        )
        url = sandbox.__enter__()
    except RuntimeError:
        sandbox = running_sandbox(SandboxSettings(port=0, database_url=db.database_url()))
        url = sandbox.__enter__()
    os.environ["METRONOME_BASE_URL"] = url
    try:
        yield url
    finally:
        sandbox.__exit__(None, None, None)


def run(customers: int, seed_value: int) -> int:
    instance.prepare()
    engine = db.create_engine()
    now = clock.now()
    months = demo_months(now)
    with billing_api() as url:
        print(f"billing API: {url}")
        for month in months:
            result = seed.seed(engine, seed.plan(month, customers, seed_value))
            print(f"seeded {month}: {result.loaded} new raw rows, {result.duplicate} already there")
        failed = False
        for month in months:
            outcome = materialize(month, log_level="ERROR")
            status = "ok" if outcome.success else f"FAILED {outcome.failed_steps}"
            print(f"materialized {month}: run {outcome.run_id} {status}")
            failed |= not outcome.success
        lines = reconcile(engine, billing_api_client.from_environment(), months, now)
    print()
    print(render(lines))
    agree = not failed and all(line.agrees for line in lines)
    print(
        "\nAll totals agree: raw metrics -> aggregated -> reported -> accepted by the billing API."
        if agree
        else "\nTOTALS DISAGREE (or a run failed): see rows marked NO, `usage-billing dlq list`."
    )
    print("Open the Dagster UI on this database and instance with: usage-billing ui")
    return 0 if agree else 1
