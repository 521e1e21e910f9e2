-- billable_metric: events_sent
-- description: Events ingested in production, duplicates excluded, per customer and UTC day (the seed's "Events Ingested" line item).
-- raw_metric: events_sent(environment_type)
-- restatement_horizon_days: 3
--
-- Sum of value where environment_type = 'PRODUCTION' and is_duplicate is not JSON true (docs/architecture.md, "Billable metrics").
-- The property tests sit in FILTER, not WHERE: the planner cannot estimate jsonb predicates, and an
-- underestimate makes it sort millions of rows instead of hashing them (see docs/benchmarks.md).
-- A customer-day with no billable event yields NULL, which the partition insert drops.
SELECT
  customer_id,
  date_bin('1 day', occurred_at, timestamptz '2000-01-01 00:00:00+00') AS window_start,
  '{}'::jsonb AS groups,
  SUM(value) FILTER (
    WHERE properties ->> 'environment_type' = 'PRODUCTION'
      AND properties -> 'is_duplicate' IS DISTINCT FROM 'true'::jsonb
  ) AS value
FROM raw_metrics
WHERE metric = 'events_sent'
  AND occurred_at >= :period_start
  AND occurred_at < :period_end
GROUP BY 1, 2
