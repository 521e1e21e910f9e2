UPDATE alert_incidents SET notified_at = now() WHERE incident_key = :incident_key
