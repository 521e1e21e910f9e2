-- Invoiced quantities that differ from what the billing API acknowledged (the ledger, summed over
-- the month's windows, corrections included) per month, customer and billable metric: an invoice
-- never bills what was not reported, nor leaves out what was. Parameters: :months, and the period
-- [:period_start, :period_end) that covers them.
WITH acknowledged AS (
  SELECT to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM') AS month, customer_id,
         event_type AS billable_metric, sum(acknowledged) AS quantity
  FROM usage_ledger
  WHERE window_start >= :period_start AND window_start < :period_end
  GROUP BY 1, 2, 3
  HAVING sum(acknowledged) <> 0
),
invoiced AS (
  SELECT month, customer_id, billable_metric, quantity
  FROM invoice_line_items
  WHERE month = ANY(CAST(:months AS text[]))
)
SELECT month, billable_metric, customer_id, i.quantity AS invoiced, a.quantity AS acknowledged
FROM invoiced AS i
FULL JOIN acknowledged AS a USING (month, customer_id, billable_metric)
WHERE month = ANY(CAST(:months AS text[])) AND i.quantity IS DISTINCT FROM a.quantity
ORDER BY 1, 2, 3
