-- Per billable metric, for windows in a month: the collectors' truth, what the ledger says the
-- billing API acknowledged, and how many events of the month wait in the dead-letter queue.
WITH truth AS (
  SELECT billable_metric AS metric, sum(value) AS aggregated
  FROM aggregated_usage
  WHERE window_start >= :period_start AND window_start < :period_end
  GROUP BY 1
),
reported AS (
  SELECT event_type AS metric, sum(acknowledged) AS reported
  FROM usage_ledger
  WHERE window_start >= :period_start AND window_start < :period_end
  GROUP BY 1
),
dead AS (
  SELECT event_type AS metric, count(*) AS dead_letters
  FROM usage_outbox
  WHERE status = 'dead' AND window_start >= :period_start AND window_start < :period_end
  GROUP BY 1
)
SELECT metric,
       coalesce(aggregated, 0) AS aggregated,
       coalesce(reported, 0) AS reported,
       coalesce(dead_letters, 0) AS dead_letters
FROM truth FULL JOIN reported USING (metric) FULL JOIN dead USING (metric)
