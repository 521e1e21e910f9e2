-- Partitions with unresolved dead letters (all, or one month).
SELECT DISTINCT partition_key
FROM usage_outbox
WHERE status = 'dead' AND (CAST(:partition_key AS text) IS NULL OR partition_key = :partition_key)
ORDER BY partition_key
