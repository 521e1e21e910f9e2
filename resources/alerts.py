"""Alerts to a chat webhook (Slack-compatible JSON: `text` plus `blocks`)."""

from __future__ import annotations

import dagster as dg
import httpx
from pydantic import Field


class AlertsResource(dg.ConfigurableResource):
    """Posts alerts to `webhook_url` (from `USAGE_ALERTS_WEBHOOK_URL`, a secret: it is never
    logged). Without a URL, alerts go to the Dagster log only."""

    webhook_url: str | None = Field(default=None, repr=False)
    timeout_seconds: float = 10.0

    def notify(self, title: str, lines: list[str]) -> bool:
        """Send one alert; True when a webhook accepted it."""
        text = f"*{title}*\n" + "\n".join(f"• {line}" for line in lines)
        dg.get_dagster_logger().warning(text)
        if not self.webhook_url:
            return False
        payload = {
            "text": text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
            ],
        }
        try:
            response = httpx.post(self.webhook_url, json=payload, timeout=self.timeout_seconds)
        except httpx.HTTPError as error:
            raise RuntimeError(f"alert webhook unreachable: {type(error).__name__}") from None
        if not response.is_success:
            raise RuntimeError(f"alert webhook answered {response.status_code}")
        return True
