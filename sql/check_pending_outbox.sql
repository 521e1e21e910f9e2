-- Outbox events planned but not yet sent or acknowledged (a run crashed, or was stopped by an
-- auth error): the next reporting run sends them with the same transaction ids.
SELECT partition_key, event_type AS metric, customer_id,
       to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, created_at
FROM usage_outbox
WHERE status = 'pending'
ORDER BY created_at, transaction_id
