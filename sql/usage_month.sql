-- A month's aggregated usage per customer and billable metric (`usage-billing usage`).
SELECT customer_id, billable_metric, trim_scale(sum(value))::text AS value
FROM aggregated_usage
WHERE window_start >= :period_start
  AND window_start < :period_end
GROUP BY customer_id, billable_metric
ORDER BY customer_id, billable_metric
