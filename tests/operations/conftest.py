"""A local webhook receiver and a Dagster instance on the test's PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest

from usage_assets.definitions import defs
from usage_assets.sensors import deliver_alerts, retry_failed_partitions
from usage_billing.cli import instance
from usage_billing.resources import AlertsResource, WarehouseResource


class Webhook:
    """Collects the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture
def dagster_instance(database_url: str) -> Iterator[dg.DagsterInstance]:
    """The instance the CLI configures (dagster-postgres on the test database)."""
    with instance.get_instance() as dagster:
        yield dagster


def evaluate_retry_sensor(
    instance: dg.DagsterInstance, database_url: str, webhook: Webhook, minutes_later: float
) -> list[dg.RunRequest]:
    """One tick of the real retry sensor, with the pipeline clock `minutes_later` than now."""
    context = dg.build_sensor_context(
        instance=instance,
        definitions=defs,
        resources={
            "warehouse": WarehouseResource(database_url=database_url),
            "alerts": AlertsResource(webhook_url=webhook.url),
        },
    )
    with pytest.MonkeyPatch.context() as patch:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes_later)
        patch.setenv("USAGE_BILLING_NOW", later.isoformat())
        return list(retry_failed_partitions(context) or [])


def deliver(database_url: str, webhook_url: str) -> str:
    """One tick of the deliver_alerts sensor; its skip message (it raises when the webhook
    cannot take an alert)."""
    resources = {
        "warehouse": WarehouseResource(database_url=database_url),
        "alerts": AlertsResource(webhook_url=webhook_url, timeout_seconds=1),
    }
    skip = deliver_alerts(dg.build_sensor_context(resources=resources))
    assert isinstance(skip, dg.SkipReason)
    return str(skip.skip_message)
