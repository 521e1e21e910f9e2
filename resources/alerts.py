"""Alerts: a Slack-compatible webhook, or the Dagster log alone."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from usage_billing.alerts import WebhookNotifier


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go; `get_client()` gives the notifier."""

    webhook_url: str | None = Field(
        default=None,
        repr=False,
        description="Slack-compatible incoming webhook (`USAGE_ALERTS_WEBHOOK_URL`, a secret); "
        "unset: alerts are logged only.",
    )
    timeout_seconds: float = Field(default=10.0, description="Timeout of one webhook post.")

    def get_client(self) -> WebhookNotifier:
        """A notifier that logs to the Dagster log and posts to the webhook."""
        return WebhookNotifier(self.webhook_url, self.timeout_seconds, dg.get_dagster_logger())
