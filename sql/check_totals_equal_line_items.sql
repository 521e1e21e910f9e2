-- Totals of :month that are not the sum of their line items, or line items not in whole cents.
WITH line_items AS (
  SELECT customer_id, sum(amount) AS total, bool_or(amount <> round(amount, 2)) AS fractional_cents
  FROM invoice_line_items
  WHERE month = :month
  GROUP BY customer_id
),
totals AS (
  SELECT customer_id, total
  FROM invoice_totals
  WHERE month = :month
)
SELECT CAST(:month AS text) AS month, customer_id, l.total AS sum_of_line_items,
       t.total AS invoice_total, coalesce(l.fractional_cents, false) AS fractional_cents
FROM line_items AS l
FULL JOIN totals AS t USING (customer_id)
WHERE l.total IS DISTINCT FROM t.total OR l.fractional_cents
ORDER BY 2
