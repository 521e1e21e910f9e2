-- A month's invoice lines, priced inside PostgreSQL: per customer and billable metric, quantity =
-- the month's aggregated usage ([:period_start, :period_end); only :customers unless NULL), and
-- amount = the sum over the metric's tiers of (the part of the quantity inside the tier) x its unit
-- price, exact in numeric, rounded to cents half away from zero (ROUND_HALF_UP) once. Unit prices
-- and rates are a single open tier (usage_billing/pricing.py, RateCard.tier_table, binds :metrics,
-- :lower_bounds, :upper_bounds (NULL: open) and :unit_prices). amount is NULL for a metric the card
-- does not price, and for a negative quantity, which is never billed.
WITH tiers AS (
  SELECT *
  FROM unnest(CAST(:metrics AS text[]), CAST(:lower_bounds AS numeric[]),
              CAST(:upper_bounds AS numeric[]), CAST(:unit_prices AS numeric[]))
       AS t(billable_metric, lower_bound, upper_bound, unit_price)
),
usage AS (
  SELECT customer_id, billable_metric, sum(value) AS quantity
  FROM aggregated_usage
  WHERE window_start >= :period_start AND window_start < :period_end
    AND (CAST(:customers AS text[]) IS NULL OR customer_id = ANY(CAST(:customers AS text[])))
  GROUP BY customer_id, billable_metric
  HAVING sum(value) <> 0
)
SELECT u.customer_id, u.billable_metric, u.quantity, p.amount
FROM usage AS u
LEFT JOIN LATERAL (
  SELECT round(
           sum((least(u.quantity, coalesce(t.upper_bound, u.quantity)) - t.lower_bound)
               * t.unit_price),
           2) AS amount
  FROM tiers AS t
  WHERE t.billable_metric = u.billable_metric AND u.quantity > t.lower_bound
) AS p ON u.quantity > 0
ORDER BY u.customer_id, u.billable_metric
