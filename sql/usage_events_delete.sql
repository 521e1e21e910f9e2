-- Replace a partition of usage events: drop the events whose window starts inside the month.
DELETE FROM usage_events
WHERE window_start >= :period_start
  AND window_start < :period_end
