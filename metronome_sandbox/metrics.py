"""The sandbox's billable metrics, read from billable_metrics.yaml beside this module."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

METRICS_FILE = Path(__file__).with_name("billable_metrics.yaml")


@dataclass(frozen=True)
class BillableMetric:
    """SUM of `properties[property]` over events with this `event_type`."""

    id: str
    name: str
    event_type: str
    property: str

    def search_view(self) -> dict[str, Any]:
        """The metric as /v1/events/search shows it in `matched_billable_metrics`."""
        return {
            "id": self.id,
            "name": self.name,
            "aggregation_type": "SUM",
            "aggregation_key": self.property,
            "event_type_filter": {"in_values": [self.event_type]},
            "property_filters": [{"name": self.property, "exists": True}],
        }


def _metric(entry: dict[str, Any]) -> BillableMetric:
    metric = BillableMetric(
        id=str(entry["id"]),
        name=str(entry["name"]),
        event_type=str(entry.get("event_type", entry["name"])),
        property=str(entry.get("property", entry["name"])),
    )
    uuid.UUID(metric.id)  # Metronome's schema types billable metric ids as UUIDs
    return metric


@functools.cache
def load(path: Path = METRICS_FILE) -> tuple[BillableMetric, ...]:
    """Every configured billable metric, in file order; ids and names must be unique."""
    entries = yaml.safe_load(path.read_text())["billable_metrics"]
    metrics = tuple(_metric(entry) for entry in entries)
    for attribute in ("id", "name"):
        values = [getattr(metric, attribute) for metric in metrics]
        if len(set(values)) != len(values):
            raise ValueError(f"{path}: duplicate billable metric {attribute}")
    return metrics
