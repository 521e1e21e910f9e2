-- Move staged lines into the store: the first line (by line number) of each event_id not stored
-- yet, in event_id order (concurrent loads then lock keys in one order and cannot deadlock). The
-- loader compares every other staged line with the stored row (raw_metrics_staged_conflicts.sql):
-- a duplicate or a conflict.
INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, value, properties)
SELECT DISTINCT ON (event_id)
  event_id, customer_id, metric, occurred_at, value, coalesce(document -> 'properties', '{}')
FROM raw_metrics_staging
ORDER BY event_id, line_number
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
