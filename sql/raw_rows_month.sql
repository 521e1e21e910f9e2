-- Raw rows per raw metric that occurred in a month (reconciliation tables).
SELECT metric, count(*) AS rows
FROM raw_metrics
WHERE occurred_at >= :period_start
  AND occurred_at < :period_end
GROUP BY metric
