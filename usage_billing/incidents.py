"""Incidents: alert once when a condition starts, stay quiet until it clears."""

from __future__ import annotations

import sqlalchemy as sa

import sql
from resources.alerts import AlertsResource


def raise_incident(
    engine: sa.Engine, alerts: AlertsResource, key: str, title: str, lines: list[str]
) -> bool:
    """Notify if `key` is not already an open incident; True when this call notified."""
    with engine.begin() as conn:
        opened = conn.execute(
            sa.text(sql.read("incident_open.sql")), {"incident_key": key, "summary": title}
        ).first()
    if not opened:
        return False
    alerts.notify(title, lines)
    with engine.begin() as conn:
        conn.execute(sa.text(sql.read("incident_notified.sql")), {"incident_key": key})
    return True


def resolve_incident(engine: sa.Engine, key: str) -> bool:
    """Close `key` if it is open; True when it was."""
    with engine.begin() as conn:
        resolved = conn.execute(sa.text(sql.read("incident_resolve.sql")), {"incident_key": key})
        return resolved.first() is not None
