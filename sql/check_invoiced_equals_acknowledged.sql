-- Invoiced quantities of :month that differ from what the billing API acknowledged (the ledger,
-- summed over the month's windows [:period_start, :period_end), dated-now corrections included),
-- per customer and billable metric: an invoice never bills what was not reported, nor leaves out
-- what was.
WITH acknowledged AS (
  SELECT customer_id, event_type AS billable_metric, sum(acknowledged) AS quantity
  FROM usage_ledger
  WHERE window_start >= :period_start AND window_start < :period_end
  GROUP BY 1, 2
  HAVING sum(acknowledged) <> 0
),
invoiced AS (
  SELECT customer_id, billable_metric, quantity
  FROM invoice_line_items
  WHERE month = :month
)
SELECT CAST(:month AS text) AS month, billable_metric, customer_id, i.quantity AS invoiced,
       a.quantity AS acknowledged
FROM invoiced AS i
FULL JOIN acknowledged AS a USING (customer_id, billable_metric)
WHERE i.quantity IS DISTINCT FROM a.quantity
ORDER BY 2, 3
