-- Accepted, de-duplicated events in acceptance order, optionally for one customer / event type.
SELECT
    id,
    transaction_id,
    customer_id,
    event_type,
    event_time,
    CAST(properties AS text) AS properties,
    accepted_at
FROM sandbox_events
WHERE NOT is_duplicate
  AND (CAST(:customer_id AS text) IS NULL OR customer_id = CAST(:customer_id AS text))
  AND (CAST(:event_type AS text) IS NULL OR event_type = CAST(:event_type AS text))
ORDER BY seq
