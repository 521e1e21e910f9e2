"""Incidents: alert once when a condition starts, stay quiet until it clears."""

from __future__ import annotations

import sqlalchemy as sa

from usage_billing.alerts import Notifier

# A row comes back when a notification is due: the incident is new, reopened, or the webhook
# failed last time.
_OPEN = sa.text("""
INSERT INTO alert_incidents (incident_key, summary)
VALUES (:incident_key, :summary)
ON CONFLICT (incident_key) DO UPDATE
  SET summary = EXCLUDED.summary, opened_at = now(), notified_at = NULL, resolved_at = NULL
  WHERE alert_incidents.resolved_at IS NOT NULL OR alert_incidents.notified_at IS NULL
RETURNING incident_key
""")
_NOTIFIED = sa.text(
    "UPDATE alert_incidents SET notified_at = now() WHERE incident_key = :incident_key"
)
# The condition cleared: the next failure is a new incident.
_RESOLVE = sa.text("""
UPDATE alert_incidents SET resolved_at = now()
WHERE incident_key = :incident_key AND resolved_at IS NULL
RETURNING incident_key
""")


def raise_incident(
    engine: sa.Engine, notifier: Notifier, key: str, title: str, lines: list[str]
) -> bool:
    """Notify if `key` is not already an open incident; True when this call notified."""
    with engine.begin() as conn:
        opened = conn.execute(_OPEN, {"incident_key": key, "summary": title}).first()
    if not opened:
        return False
    notifier.notify(title, lines)
    with engine.begin() as conn:
        conn.execute(_NOTIFIED, {"incident_key": key})
    return True


def resolve_incident(engine: sa.Engine, key: str) -> bool:
    """Close `key` if it is open; True when it was."""
    with engine.begin() as conn:
        return conn.execute(_RESOLVE, {"incident_key": key}).first() is not None
