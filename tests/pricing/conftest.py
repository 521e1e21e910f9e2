"""Running the priced-usage assets after the real pipeline, and a webhook to catch alerts."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from tests.operations.conftest import deliver, webhook
from usage_assets.assets.priced_usage import pricing_assets, pricing_checks
from usage_billing.resources import AlertsResource, WarehouseResource

__all__ = ["checks_of", "deliver", "price_month", "webhook"]


def price_month(
    database_url: str, month: str, webhook_url: str | None = None
) -> dg.ExecuteInProcessResult:
    """The priced-usage assets and their checks for one month, after `tests.pipeline.run_month`
    (the same steps the `usage_billing` job runs after reporting)."""
    return dg.materialize(
        [*pricing_assets, *pricing_checks],
        partition_key=month,
        resources={
            "warehouse": WarehouseResource(database_url=database_url),
            "alerts": AlertsResource(webhook_url=webhook_url),
        },
        raise_on_error=False,
    )


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """Each check's evaluation of the run, by name."""
    return {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def contracts_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch):
    """Write a contracts file and point USAGE_CONTRACTS at it."""

    def write(*commits: tuple[str, str, str, str]) -> None:
        lines = ["contracts:"]
        for customer, amount, starts_on, ends_before in commits:
            lines.append(f"  - customer_id: {customer}")
            lines.append(
                f'    commit: {{amount: "{amount}", starts_on: "{starts_on}", '
                f'ends_before: "{ends_before}"}}'
            )
        path = tmp_path / "contracts.yaml"
        path.write_text("\n".join(lines) + "\n")
        monkeypatch.setenv("USAGE_CONTRACTS", str(path))

    return write
