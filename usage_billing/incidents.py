"""Incidents: alert once when a condition starts, stay quiet until it clears.

An incident is a row of `alert_incidents` keyed by what it is about. Opening it records the alert
to send (`summary`, `details`); the alert is due while the incident is open and not yet notified.
`raise_incident` opens and sends at once (sensors, which have no run to fail); runs only
`open_incident`, and the `deliver_alerts` sensor sends what is due (`deliver_due`), so a webhook
that fails never fails a run, and an alert is marked sent only once the webhook took it.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from usage_billing.alerts import Notifier

# A row comes back when a notification is due: the incident is new, reopened, or not sent yet.
_OPEN = sa.text("""
INSERT INTO alert_incidents (incident_key, summary, details)
VALUES (:incident_key, :summary, CAST(:details AS jsonb))
ON CONFLICT (incident_key) DO UPDATE
  SET summary = EXCLUDED.summary, details = EXCLUDED.details, opened_at = now(),
      notified_at = NULL, resolved_at = NULL
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
_DUE = sa.text("""
SELECT incident_key, summary, details
FROM alert_incidents
WHERE notified_at IS NULL AND resolved_at IS NULL
ORDER BY opened_at, incident_key
""")


def open_incident(engine: sa.Engine, key: str, title: str, lines: list[str]) -> bool:
    """Record `key` as open with its alert; True when an alert is now due (a new or reopened
    incident, or one whose alert has not gone out yet). Sends nothing."""
    params = {"incident_key": key, "summary": title, "details": json.dumps(lines)}
    with engine.begin() as conn:
        return conn.execute(_OPEN, params).first() is not None


def raise_incident(
    engine: sa.Engine, notifier: Notifier, key: str, title: str, lines: list[str]
) -> bool:
    """Open `key` and notify at once if its alert is due; True when this call notified."""
    if not open_incident(engine, key, title, lines):
        return False
    _send(engine, notifier, key, title, lines)
    return True


def deliver_due(engine: sa.Engine, notifier: Notifier) -> list[str]:
    """Send every alert that is due, oldest first; the keys sent. The first one the notifier
    cannot deliver raises, and it and the ones after it stay due for the next call."""
    with engine.connect() as conn:
        due = conn.execute(_DUE).all()
    sent = []
    for row in due:
        _send(engine, notifier, row.incident_key, row.summary, list(row.details))
        sent.append(row.incident_key)
    return sent


def _send(engine: sa.Engine, notifier: Notifier, key: str, title: str, lines: list[str]) -> None:
    notifier.notify(title, lines)
    with engine.begin() as conn:
        conn.execute(_NOTIFIED, {"incident_key": key})


def resolve_incident(engine: sa.Engine, key: str) -> bool:
    """Close `key` if it is open; True when it was."""
    with engine.begin() as conn:
        return conn.execute(_RESOLVE, {"incident_key": key}).first() is not None
