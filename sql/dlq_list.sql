-- Unresolved dead letters with what they carry and why they failed.
SELECT d.transaction_id, o.partition_key, o.event_type, o.customer_id, o.window_start, o.delta,
       d.status_code, d.message, d.failures, d.failed_at
FROM dead_letters AS d
JOIN usage_outbox AS o USING (transaction_id)
WHERE d.resolved_at IS NULL
ORDER BY d.failed_at, d.transaction_id
