-- The billing API accepted these events: mark them, resolve their dead letters, move the ledger.
WITH acked AS (
  UPDATE usage_outbox
  SET status = 'acknowledged', acknowledged_at = now(), attempts = attempts + 1
  WHERE transaction_id = ANY(:transaction_ids) AND status <> 'acknowledged'
  RETURNING transaction_id, event_type, customer_id, window_start, groups, delta
),
resolved AS (
  UPDATE dead_letters SET resolved_at = now()
  WHERE transaction_id IN (SELECT transaction_id FROM acked) AND resolved_at IS NULL
  RETURNING 1
),
per_key AS (
  SELECT event_type, customer_id, window_start, groups, sum(delta) AS delta
  FROM acked
  GROUP BY event_type, customer_id, window_start, groups
)
UPDATE usage_ledger AS l
SET acknowledged = l.acknowledged + p.delta, updated_at = now()
FROM per_key AS p
WHERE l.event_type = p.event_type
  AND l.customer_id = p.customer_id
  AND l.window_start = p.window_start
  AND l.groups = p.groups
