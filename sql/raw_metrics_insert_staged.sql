-- Move staged lines into the store: the first line (by line number) of each event_id not stored
-- yet. Every other staged line is a duplicate or a conflict; the loader tells which by comparing it
-- with the stored row afterwards.
INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, value, properties)
SELECT DISTINCT ON (event_id)
  event_id, customer_id, metric, occurred_at, value, coalesce(document -> 'properties', '{}')
FROM raw_metrics_staging
ORDER BY event_id, line_number
ON CONFLICT (event_id) DO NOTHING
