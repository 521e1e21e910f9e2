-- Open an incident unless it is open and notified; a row comes back when a notification is due
-- (new, reopened, or the webhook failed last time).
INSERT INTO alert_incidents (incident_key, summary)
VALUES (:incident_key, :summary)
ON CONFLICT (incident_key) DO UPDATE
  SET summary = EXCLUDED.summary, opened_at = now(), notified_at = NULL, resolved_at = NULL
  WHERE alert_incidents.resolved_at IS NOT NULL OR alert_incidents.notified_at IS NULL
RETURNING incident_key
