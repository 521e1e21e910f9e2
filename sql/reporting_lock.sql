-- One reporting run per partition at a time: a second run waits here until the first is done,
-- then finds nothing left to send. Session-level, released by reporting_unlock.sql.
SELECT pg_advisory_lock(hashtextextended('reported_usage:' || :partition_key, 0))
