-- Keep a rejected line with its reason; the same line of the same file is kept once.
INSERT INTO quarantined_metrics (source, line_number, line, reason)
VALUES (:source, :line_number, :line, :reason)
ON CONFLICT (source, line_number, line) DO UPDATE SET reason = EXCLUDED.reason
