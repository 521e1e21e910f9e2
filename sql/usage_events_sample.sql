-- One event of the partition, for the asset's metadata preview.
SELECT customer_id, event_type, window_start, properties
FROM usage_events
WHERE window_start >= :period_start
  AND window_start < :period_end
ORDER BY event_type, customer_id, window_start
LIMIT 1
