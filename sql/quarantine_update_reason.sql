-- A quarantined line that still fails keeps its latest reason.
UPDATE quarantined_metrics SET reason = :reason WHERE id = :id
