-- Per event type: how many events a partition holds and their total quantity.
SELECT event_type, count(*) AS events, sum(quantity) AS total
FROM usage_events
WHERE window_start >= :period_start
  AND window_start < :period_end
GROUP BY event_type
ORDER BY event_type
