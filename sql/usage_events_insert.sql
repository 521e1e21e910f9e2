-- Aggregated usage as Metronome-shaped events: the quantity goes in properties[<billable metric>]
-- as a decimal string (exact), beside the group keys.
INSERT INTO usage_events (event_type, customer_id, window_start, groups, quantity, properties)
SELECT
  billable_metric,
  customer_id,
  window_start,
  groups,
  value,
  groups || jsonb_build_object(billable_metric, trim_scale(value)::text)
FROM aggregated_usage
WHERE window_start >= :period_start
  AND window_start < :period_end
