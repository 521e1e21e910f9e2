-- Events of a partition still to send (planned by this run or left by a crashed one).
SELECT transaction_id, event_type, customer_id, window_start, groups, delta
FROM usage_outbox
WHERE partition_key = :partition_key AND status = 'pending'
ORDER BY window_start, event_type, customer_id, transaction_id
