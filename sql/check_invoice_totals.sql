-- Invoice totals that are not the sum of their line items, or line items not in whole cents, for
-- the given :months.
WITH line_items AS (
  SELECT month, customer_id, sum(amount) AS total,
         bool_or(amount <> round(amount, 2)) AS fractional_cents
  FROM invoice_line_items
  WHERE month = ANY(CAST(:months AS text[]))
  GROUP BY 1, 2
),
totals AS (
  SELECT month, customer_id, total
  FROM invoice_totals
  WHERE month = ANY(CAST(:months AS text[]))
)
SELECT month, customer_id, l.total AS sum_of_line_items, t.total AS invoice_total,
       coalesce(l.fractional_cents, false) AS fractional_cents
FROM line_items AS l
FULL JOIN totals AS t USING (month, customer_id)
WHERE l.total IS DISTINCT FROM t.total OR l.fractional_cents
ORDER BY 1, 2
