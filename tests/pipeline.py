"""Pipeline helpers for tests: the sandbox as seen from outside, running months, reading truth."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import dagster as dg
import httpx
import sqlalchemy as sa

from metronome_sandbox.settings import DEV_TOKEN
from tests.helpers import at
from usage_assets.assets.aggregated_usage import usage_assets
from usage_assets.assets.reported_usage import reported_usage
from usage_assets.assets.usage_events import usage_events
from usage_billing.resources import BillingApiResource, WarehouseResource

NOW = at("2025-03-20 12:00")


@dataclass
class Sandbox:
    url: str

    token: str = DEV_TOKEN

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def configure(self, **settings: Any) -> None:
        response = httpx.post(f"{self.url}/sandbox/config", json=settings, headers=self.headers)
        response.raise_for_status()

    def events(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/sandbox/events", headers=self.headers)
        response.raise_for_status()
        return response.json()

    def totals(self) -> dict[tuple[str, str], Decimal]:
        """Sum of properties[metric] per (customer, metric) over every accepted event."""
        totals: Counter[tuple[str, str]] = Counter()
        for event in self.events():
            metric = event["event_type"]
            totals[(event["customer_id"], metric)] += Decimal(event["properties"][metric])
        return {key: value for key, value in totals.items() if value != 0}


def fast_api(url: str, token: str = DEV_TOKEN, **overrides: Any) -> BillingApiResource:
    """The real client with test-sized backoff (the policy is the same, the waits are short)."""
    settings = {
        "base_url": url,
        "bearer_token": token,
        "backoff_initial_seconds": 0.001,
        "backoff_max_seconds": 0.01,
        "max_retries": 12,
        **overrides,
    }
    return BillingApiResource(**settings)


def run_month(
    database_url: str, api: BillingApiResource, month: str, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    """Aggregate, build events and report one month through Dagster."""
    return dg.materialize(
        [*usage_assets, usage_events, reported_usage],
        partition_key=month,
        resources={"warehouse": WarehouseResource(database_url=database_url), "billing_api": api},
        raise_on_error=False,
        **kwargs,
    )


def aggregate(database_url: str, month: str) -> None:
    """Aggregation and usage events only (no reporting) for one month."""
    result = dg.materialize(
        [*usage_assets, usage_events],
        partition_key=month,
        resources={"warehouse": WarehouseResource(database_url=database_url)},
    )
    assert result.success


def report_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """reported_usage's metadata, from its materialization or, when it failed, its failure."""
    for event in result.all_events:
        if event.is_step_materialization and event.step_key == "reported_usage":
            return {
                k: v.value
                for k, v in event.step_materialization_data.materialization.metadata.items()
            }
        if event.is_step_failure and event.step_key == "reported_usage":
            failure = event.step_failure_data.user_failure_data
            return {k: v.value for k, v in failure.metadata.items()} if failure else {}
    raise AssertionError("reported_usage did not run")


def truth(engine: sa.Engine) -> dict[tuple[str, str], Decimal]:
    """What the collectors say, per (customer, metric), over every partition."""
    query = (
        "SELECT customer_id, billable_metric, sum(value) FROM aggregated_usage "
        "GROUP BY 1, 2 HAVING sum(value) <> 0"
    )
    with engine.connect() as conn:
        return {(c, m): v for c, m, v in conn.execute(sa.text(query))}


def outbox_status(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, count(*) FROM usage_outbox GROUP BY 1"))
        return dict(rows.all())
