-- Ledger keys whose committed usage the billing API has not (fully) acknowledged.
SELECT event_type AS metric, customer_id,
       to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
       committed - acknowledged AS outstanding
FROM usage_ledger
WHERE committed <> acknowledged
ORDER BY window_start, event_type, customer_id
