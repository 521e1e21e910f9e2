-- Store one validated ingest batch atomically (one statement); returns is_duplicate per event.
-- :events is a JSON array of {ord, transaction_id, customer_id, event_type, event_time,
-- properties, first_in_batch}; :now is the sandbox clock. A transaction id is claimed when unseen
-- or last accepted 34 days or more ago; every other row (also a repeat within the batch) is stored
-- as a duplicate.
WITH incoming AS MATERIALIZED (
    -- materialized: each event keeps the one id generated here
    SELECT e.*, gen_random_uuid() AS id
    FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS e(
        ord integer,
        transaction_id text,
        customer_id text,
        event_type text,
        event_time timestamptz,
        properties jsonb,
        first_in_batch boolean
    )
),
claimed AS (
    INSERT INTO sandbox_transactions AS t (transaction_id, event_id, accepted_at)
    SELECT transaction_id, id, CAST(:now AS timestamptz)
    FROM incoming
    WHERE first_in_batch
    ON CONFLICT (transaction_id) DO UPDATE
        SET event_id = EXCLUDED.event_id, accepted_at = EXCLUDED.accepted_at
        WHERE t.accepted_at <= CAST(:now AS timestamptz) - interval '34 days'
    RETURNING event_id
)
INSERT INTO sandbox_events (
    id, transaction_id, customer_id, event_type, event_time, properties, accepted_at, is_duplicate
)
SELECT
    i.id,
    i.transaction_id,
    i.customer_id,
    i.event_type,
    i.event_time,
    i.properties,
    CAST(:now AS timestamptz),
    NOT EXISTS (SELECT 1 FROM claimed c WHERE c.event_id = i.id)
FROM incoming i
ORDER BY i.ord
RETURNING is_duplicate
