-- The condition cleared: the next failure is a new incident.
UPDATE alert_incidents SET resolved_at = now()
WHERE incident_key = :incident_key AND resolved_at IS NULL
RETURNING incident_key
