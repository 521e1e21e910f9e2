"""`usage-billing demo`: the whole pipeline on the configured (by default embedded) setup."""

from __future__ import annotations

import datetime as dt

from usage_billing import billing_api, db, periods, synthetic
from usage_billing.cli import instance
from usage_billing.cli.materialize import materialize
from usage_billing.reconcile import reconcile, render


def demo_months(now: dt.datetime) -> list[str]:
    """The previous and the current month."""
    return [periods.previous_month(now), periods.month_of(now)]


def run(customers: int, seed_value: int) -> int:
    """Seed both months, run them through Dagster, print the reconciliation; 0 when it agrees."""
    instance.prepare()
    engine = db.create_engine()
    now = periods.now()
    months = demo_months(now)
    api = billing_api.from_environment()  # local mode: starts the sandbox on 127.0.0.1:8787
    print(f"billing API: {api.base_url}")
    for month in months:
        result = synthetic.seed(engine, synthetic.plan(month, customers, seed_value))
        print(f"seeded {month}: {result.loaded} new raw rows, {result.duplicate} already there")
    failed = False
    for month in months:
        outcome = materialize(month, log_level="ERROR")
        status = "ok" if outcome.success else f"FAILED {outcome.failed_steps}"
        print(f"materialized {month}: run {outcome.run_id} {status}")
        failed |= not outcome.success
    lines = reconcile(engine, api, months, now)
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
