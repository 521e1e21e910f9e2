"""Deterministic, realistic synthetic raw metrics for a month (`usage-billing seed`).

Each raw metric has a generator registered with `@generator("name")`; generators yield the JSON
documents a producer would send, and everything goes through the loader's validation and COPY path.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from usage_billing import clock, loader
from usage_billing.collectors import raw_metrics


@dataclass(frozen=True)
class SeedPlan:
    """What to generate: customers and the half-open period, never later than `now`."""

    month: str
    customers: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime
    now: dt.datetime
    seed: int

    def rng(self, metric: str) -> random.Random:
        return random.Random(f"{self.seed}:{self.month}:{metric}")

    def days(self) -> Iterator[dt.datetime]:
        day = self.start
        while day < min(self.end, self.now):
            yield day
            day += dt.timedelta(days=1)

    def event(
        self, metric: str, key: str, customer: str, at: dt.datetime, value: Any, **properties: Any
    ) -> dict[str, Any]:
        return {
            "event_id": f"{metric}-{self.month}-s{self.seed}-{key}",
            "customer_id": customer,
            "metric": metric,
            "occurred_at": at.isoformat(),
            "value": value,
            "properties": properties,
        }


Generator = Callable[[SeedPlan], Iterator[dict[str, Any]]]
GENERATORS: dict[str, Generator] = {}


def generator(metric: str) -> Callable[[Generator], Generator]:
    def register(function: Generator) -> Generator:
        GENERATORS[metric] = function
        return function

    return register


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """UTC [start, end) of a `YYYY-MM` month."""
    start = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def plan(month: str, customers: int, seed: int) -> SeedPlan:
    start, end = month_bounds(month)
    names = tuple(f"cust_{n:04d}" for n in range(1, customers + 1))
    return SeedPlan(month, names, start, end, clock.now(), seed)


@generator("events_sent")
def events_sent(plan: SeedPlan) -> Iterator[dict[str, Any]]:
    """Batches of ingested events: mostly production, some staging/dev, some flagged duplicates,
    and producers that re-send a batch (same event_id) now and then."""
    rng = plan.rng("events_sent")
    scale = {customer: rng.lognormvariate(7, 1.2) for customer in plan.customers}
    for day in plan.days():
        for customer in plan.customers:
            for batch in range(rng.randint(1, 4)):
                at = day + dt.timedelta(seconds=rng.randrange(86_400))
                if at >= plan.now:
                    continue
                environment = rng.choices(
                    ["PRODUCTION", "STAGING", "DEVELOPMENT"], weights=[85, 10, 5]
                )[0]
                properties: dict[str, Any] = {"environment_type": environment}
                if rng.random() < 0.05:
                    properties["is_duplicate"] = True
                elif rng.random() < 0.5:
                    properties["is_duplicate"] = False
                value = max(1, int(scale[customer] * rng.uniform(0.2, 1.8)))
                key = f"{customer}-{day:%d}-{batch}"
                document = plan.event("events_sent", key, customer, at, value, **properties)
                yield document
                if rng.random() < 0.02:
                    yield document  # at-least-once producer: the loader must drop the re-send


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


# Generators for the outcome-based metrics register themselves on import.
from usage_billing import seed_outcomes  # noqa: E402, F401
