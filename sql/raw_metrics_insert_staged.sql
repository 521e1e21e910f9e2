-- Move staged lines into the store; an event_id already there (or twice in the file) is a no-op.
INSERT INTO raw_metrics (event_id, customer_id, metric, occurred_at, value, properties)
SELECT event_id, customer_id, metric, occurred_at, value, coalesce(document -> 'properties', '{}')
FROM raw_metrics_staging
ON CONFLICT (event_id) DO NOTHING
