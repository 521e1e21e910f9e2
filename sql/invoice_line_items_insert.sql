-- Replace a month's line items (after DELETE of the month) with sql/priced_month.sql, substituted
-- for the placeholder below, in one statement; the result says, per billable metric and overall,
-- what was priced and what was not (no price; a negative quantity).
WITH priced AS (
  {priced_month_sql}
),
inserted AS (
  INSERT INTO invoice_line_items
    (month, customer_id, billable_metric, quantity, amount, rate_card_sha256, priced_at)
  SELECT :month, customer_id, billable_metric, quantity, amount, :rate_card_sha256, :priced_at
  FROM priced
  WHERE amount IS NOT NULL
)
SELECT billable_metric,
       count(*) FILTER (WHERE amount IS NOT NULL) AS line_items,
       count(DISTINCT customer_id) FILTER (WHERE amount IS NOT NULL) AS customers,
       coalesce(sum(amount), 0) AS amount,
       count(*) FILTER (WHERE amount IS NULL AND quantity > 0) AS unpriced,
       min(customer_id || ': ' || quantity) FILTER (WHERE quantity < 0) AS a_negative_quantity
FROM priced
GROUP BY GROUPING SETS ((billable_metric), ())
ORDER BY billable_metric NULLS FIRST
