"""Alerts to a chat webhook (Slack-compatible JSON: `text` plus `blocks`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import httpx

log = logging.getLogger("usage_billing.alerts")


class Notifier(Protocol):
    """Something that delivers an alert: a title and a few lines."""

    def notify(self, title: str, lines: list[str]) -> bool: ...


@dataclass(frozen=True)
class WebhookNotifier:
    """Logs every alert and posts it to `webhook_url` (a secret: never logged) when there is one."""

    webhook_url: str | None = field(default=None, repr=False)
    timeout_seconds: float = 10.0
    logger: logging.Logger = log

    def notify(self, title: str, lines: list[str]) -> bool:
        """Send one alert; True when a webhook accepted it."""
        text = f"*{title}*\n" + "\n".join(f"• {line}" for line in lines)
        self.logger.warning(text)
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
