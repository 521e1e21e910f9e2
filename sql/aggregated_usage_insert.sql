-- Then insert what the collector computes for the same period, inside PostgreSQL.
-- The placeholder below is replaced by the collector's SELECT; rows outside the period belong to
-- other partitions, and zero rows need no event.
-- A raw row dated ahead (written by a service directly) is not usage yet: the collector runs over
-- the rows that occurred at or before :as_of (collectors.rows_known_at), and a later run counts
-- it. A window that has not started yet is not usage either: every event is dated at its window's
-- start (or now), so no event can be dated ahead of the clock. Every collector's rows pass here.
INSERT INTO aggregated_usage (billable_metric, customer_id, window_start, groups, value, computed_at)
SELECT :billable_metric, c.customer_id, c.window_start, c.groups, c.value, now()
FROM ({collector_sql}) AS c
WHERE c.window_start >= :period_start
  AND c.window_start < :period_end
  AND c.window_start <= :as_of
  AND c.value <> 0  -- also drops NULL (no billable event in the window)
