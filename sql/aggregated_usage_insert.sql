-- Then insert what the collector computes for the same period, inside PostgreSQL.
-- The placeholder below is replaced by the collector's SELECT; rows outside the period belong to
-- other partitions, and zero rows need no event.
INSERT INTO aggregated_usage (billable_metric, customer_id, window_start, groups, value, computed_at)
SELECT :billable_metric, c.customer_id, c.window_start, c.groups, c.value, now()
FROM ({collector_sql}) AS c
WHERE c.window_start >= :period_start
  AND c.window_start < :period_end
  AND c.value <> 0  -- also drops NULL (no billable event in the window)
