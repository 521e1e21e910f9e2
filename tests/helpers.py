"""Small builders shared by tests."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

UTC = dt.UTC
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def at(text: str) -> dt.datetime:
    """A UTC datetime from 'YYYY-MM-DD HH:MM[:SS]'."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def line(
    event_id: str,
    customer_id: str = "cust_a",
    metric: str = "events_sent",
    occurred_at: str = "2025-01-15T12:00:00+00:00",
    value: Any = 1,
    **properties: Any,
) -> str:
    """One raw-metric JSON line."""
    return json.dumps(
        {
            "event_id": event_id,
            "customer_id": customer_id,
            "metric": metric,
            "occurred_at": occurred_at,
            "value": value,
            "properties": properties,
        }
    )


def sent(event_id: str, occurred_at: str, value: Any = 1, customer_id: str = "cust_a", **props):
    """An events_sent line, production unless told otherwise."""
    props.setdefault("environment_type", "PRODUCTION")
    return line(event_id, customer_id, "events_sent", occurred_at, value, **props)


def store_raw(
    engine: sa.Engine, event_id: str, occurred_at: str, value: Any, customer_id: str = "cust_a"
) -> None:
    """An events_sent row written straight into the store, bypassing the loader (which refuses
    negative values): what the invalid-values check guards against."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, value,"
                """ properties) VALUES (:id, :customer_id, 'events_sent', :at, :value,"""
                """ '{"environment_type": "PRODUCTION"}')"""
            ),
            {"id": event_id, "customer_id": customer_id, "at": occurred_at, "value": value},
        )
