"""Synthetic `events_sent`: the seed's own product, events ingested per customer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from usage_billing.synthetic.plan import SeedPlan, generator


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
