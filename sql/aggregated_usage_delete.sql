-- Replace a partition: first drop the metric's rows whose window starts inside [period_start, period_end).
DELETE FROM aggregated_usage
WHERE billable_metric = :billable_metric
  AND window_start >= :period_start
  AND window_start < :period_end
