-- Redrive: dead events of a partition go back to pending, with the same transaction ids.
UPDATE usage_outbox SET status = 'pending'
WHERE status = 'dead' AND partition_key = :partition_key
