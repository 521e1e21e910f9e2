"""A local server that behaves like Metronome's usage API, as stripe-mock does for Stripe.

Metronome's endpoints (bearer token; errors are {"message": ...}):
  POST /v1/ingest           1-100 events; 200 empty; dedupe by transaction_id over 34 days
  POST /v1/usage            sums per customer, billable metric (billable_metrics.yaml), window
                            and optional group_by; `?next_page=` cursor, `?limit=` page size
  POST /v1/events/search    {"transactionIds": [...]} -> events with is_duplicate
Test aids (same token): GET /sandbox/events[?customer_id=&event_type=], GET|POST /sandbox/config
(fault_rate, lost_ack_rate, rate_limit, latency_ms, reject_customer_ids, fault_seed),
GET|POST /sandbox/clock ({"now": "<RFC 3339>"} freezes, {"now": null} releases),
GET /sandbox/health. Events live in the tables sandbox_events and sandbox_transactions.

Public API: `SandboxSettings`, `DEV_TOKEN`, `create_app`, `serve`, `running_sandbox`. The server
parts load lazily so that `metronome_sandbox.settings` stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from metronome_sandbox.settings import DEV_TOKEN, SandboxSettings

if TYPE_CHECKING:
    from metronome_sandbox.app import create_app
    from metronome_sandbox.server import running_sandbox, serve

__all__ = ["DEV_TOKEN", "SandboxSettings", "create_app", "running_sandbox", "serve"]

_LAZY = {"create_app": "metronome_sandbox.app", "running_sandbox": "metronome_sandbox.server"}
_LAZY["serve"] = "metronome_sandbox.server"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'metronome_sandbox' has no attribute {name!r}")
