-- Usage of :month ([:period_start, :period_end)) that no line item prices: a billable metric the
-- rate card has no price for (a metric without a price is an error, never zero). Only the rows of
-- (customer, metric) pairs without a line item are summed.
SELECT CAST(:month AS text) AS month, a.billable_metric, a.customer_id, sum(a.value) AS quantity
FROM aggregated_usage AS a
WHERE a.window_start >= :period_start AND a.window_start < :period_end
  AND NOT EXISTS (
    SELECT 1
    FROM invoice_line_items AS l
    WHERE l.month = :month
      AND l.customer_id = a.customer_id
      AND l.billable_metric = a.billable_metric
  )
GROUP BY a.billable_metric, a.customer_id
HAVING sum(a.value) <> 0
ORDER BY 2, 3
