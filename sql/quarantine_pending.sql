-- Quarantined lines not yet loaded, oldest first.
SELECT id, source, line_number, line
FROM quarantined_metrics
WHERE resolved_at IS NULL
ORDER BY id
