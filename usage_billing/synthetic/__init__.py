"""Deterministic, realistic synthetic raw metrics for a month (`usage-billing seed`).

Each raw metric has a generator registered with `@generator("name")` in a module of this package;
generators yield the JSON documents a producer would send, and everything goes through the loader's
validation and COPY path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from usage_billing import loader
from usage_billing.collectors import raw_metrics
from usage_billing.synthetic import events_sent, outcomes
from usage_billing.synthetic.plan import GENERATORS, SeedPlan, plan

__all__ = ["SeedPlan", "documents", "events_sent", "outcomes", "plan", "seed", "write_jsonl"]


def documents(plan: SeedPlan) -> Iterator[dict[str, Any]]:
    """Every registered generator whose raw metric a collector reads."""
    for metric in raw_metrics():
        if metric in GENERATORS:
            yield from GENERATORS[metric](plan)


def seed(engine: sa.Engine, plan: SeedPlan) -> loader.LoadResult:
    """Write the plan's raw metrics into the store (idempotent: event ids are deterministic)."""
    lines = (json.dumps(document) for document in documents(plan))
    return loader.load_lines(engine, lines, source=f"seed:{plan.month}:{plan.seed}")


def write_jsonl(plan: SeedPlan, path: Path) -> int:
    """Write the plan as a JSON-lines file for `usage-billing load`; returns the line count."""
    with path.open("w", encoding="utf-8") as out:
        count = 0
        for count, document in enumerate(documents(plan), start=1):  # noqa: B007
            out.write(json.dumps(document) + "\n")
    return count
