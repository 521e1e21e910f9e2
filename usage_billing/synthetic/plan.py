"""What a synthetic month is made of: the plan (customers, period, clock, seed) and the registry
of generators, one per raw metric."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from usage_billing import periods


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


def plan(month: str, customers: int, seed: int) -> SeedPlan:
    """The plan of `month` for customers cust_0001.. as of the pipeline clock."""
    start, end = periods.month_bounds(month)
    names = tuple(f"cust_{n:04d}" for n in range(1, customers + 1))
    return SeedPlan(month, names, start, end, periods.now(), seed)
