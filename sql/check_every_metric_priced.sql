-- Billable metrics with usage in :month ([:period_start, :period_end)) but no line item: a metric
-- the rate card has no price for (a metric without a price is an error, never zero). The metrics
-- are found by skipping through the primary key, one index probe per metric, so the check costs
-- nothing like a scan of the month; only a metric without line items has its usage summed, per
-- customer. (Every priced (customer, metric) is held to the ledger by invoiced_equals_acknowledged.)
WITH RECURSIVE metrics AS (
  (SELECT billable_metric FROM aggregated_usage ORDER BY billable_metric LIMIT 1)
  UNION ALL
  SELECT (
    SELECT a.billable_metric
    FROM aggregated_usage AS a
    WHERE a.billable_metric > m.billable_metric
    ORDER BY a.billable_metric
    LIMIT 1
  )
  FROM metrics AS m
  WHERE m.billable_metric IS NOT NULL
),
unpriced AS (
  SELECT m.billable_metric
  FROM metrics AS m
  WHERE m.billable_metric IS NOT NULL
    AND NOT EXISTS (
      SELECT 1 FROM invoice_line_items AS l
      WHERE l.month = :month AND l.billable_metric = m.billable_metric
    )
)
SELECT CAST(:month AS text) AS month, a.billable_metric, a.customer_id, sum(a.value) AS quantity
FROM unpriced AS u
JOIN aggregated_usage AS a
  ON a.billable_metric = u.billable_metric
 AND a.window_start >= :period_start AND a.window_start < :period_end
GROUP BY a.billable_metric, a.customer_id
HAVING sum(a.value) <> 0
ORDER BY 2, 3
