-- Redrive: dead events of a partition go back to pending, with the same transaction ids. With
-- :retryable_only, only those that died of unavailability (no answer, 408/409/429, 5xx); a 4xx
-- rejection needs its cause fixed first and a manual redrive.
UPDATE usage_outbox AS o SET status = 'pending'
FROM dead_letters AS d
WHERE d.transaction_id = o.transaction_id
  AND o.status = 'dead'
  AND o.partition_key = :partition_key
  AND (NOT :retryable_only
       OR d.status_code IS NULL OR d.status_code IN (408, 409, 429) OR d.status_code >= 500)
