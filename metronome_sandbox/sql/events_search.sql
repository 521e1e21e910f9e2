-- Events (duplicates included) with the given transaction ids whose timestamp lies within the
-- 34 days before :now, in acceptance order.
SELECT
    id,
    transaction_id,
    customer_id,
    event_type,
    event_time,
    CAST(properties AS text) AS properties,
    accepted_at,
    is_duplicate
FROM sandbox_events
WHERE transaction_id = ANY(CAST(:transaction_ids AS text[]))
  AND event_time >= CAST(:now AS timestamptz) - interval '34 days'
ORDER BY seq
