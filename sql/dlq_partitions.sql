-- Partitions with unresolved dead letters (all, or one month), retryable ones only if asked.
SELECT DISTINCT o.partition_key
FROM usage_outbox AS o
JOIN dead_letters AS d USING (transaction_id)
WHERE o.status = 'dead'
  AND (CAST(:partition_key AS text) IS NULL OR o.partition_key = :partition_key)
  AND (NOT :retryable_only
       OR d.status_code IS NULL OR d.status_code IN (408, 409, 429) OR d.status_code >= 500)
ORDER BY o.partition_key
