-- A quarantined line that now loads (or is a duplicate of a stored event) is resolved.
UPDATE quarantined_metrics SET resolved_at = now() WHERE id = ANY(:ids)
