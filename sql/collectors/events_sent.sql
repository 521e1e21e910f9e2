-- billable_metric: events_sent
-- description: Events ingested in production, duplicates excluded, per customer and UTC day (the seed's "Events Ingested" line item).
-- raw_metric: events_sent(environment_type)
-- restatement_horizon_days: 3
--
-- Sum of value where environment_type = 'PRODUCTION' and is_duplicate is not JSON true (DESIGN.md §5).
SELECT
  customer_id,
  date_trunc('day', occurred_at, 'UTC') AS window_start,
  '{}'::jsonb AS groups,
  SUM(value) AS value
FROM raw_metrics
WHERE metric = 'events_sent'
  AND occurred_at >= :period_start
  AND occurred_at < :period_end
  AND properties ->> 'environment_type' = 'PRODUCTION'
  AND properties -> 'is_duplicate' IS DISTINCT FROM 'true'::jsonb
GROUP BY 1, 2
