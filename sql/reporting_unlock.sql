SELECT pg_advisory_unlock(hashtextextended('reported_usage:' || :partition_key, 0))
