-- Usage of the given months with no priced line item: a billable metric the rate card has no price
-- for (a metric without a price is an error, never zero). Parameters: :months, and the period
-- [:period_start, :period_end) that covers them.
WITH usage AS (
  SELECT to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM') AS month, customer_id,
         billable_metric, sum(value) AS quantity
  FROM aggregated_usage
  WHERE window_start >= :period_start AND window_start < :period_end
  GROUP BY 1, 2, 3
  HAVING sum(value) <> 0
)
SELECT u.month, u.billable_metric, u.customer_id, u.quantity
FROM usage AS u
LEFT JOIN invoice_line_items AS l USING (month, customer_id, billable_metric)
WHERE u.month = ANY(CAST(:months AS text[])) AND l.month IS NULL
ORDER BY 1, 2, 3
