-- What a partition of one billable metric now holds (asset metadata).
SELECT
  count(*) AS rows,
  count(DISTINCT customer_id) AS customers,
  coalesce(sum(value), 0) AS total
FROM aggregated_usage
WHERE billable_metric = :billable_metric
  AND window_start >= :period_start
  AND window_start < :period_end
