-- Plan a partition: the delta between truth (usage_events) and the ledger per (event type, customer,
-- window, group) goes to the outbox, and the ledger's committed amount moves with it, in this one
-- statement. The transaction id hashes (metric, customer, window, group, revision): a re-run after a
-- crash resends the same ids, and the billing API de-duplicates them.
WITH truth AS (
  SELECT event_type, customer_id, window_start, groups, quantity
  FROM usage_events
  WHERE window_start >= :period_start AND window_start < :period_end
),
ledger AS (
  SELECT event_type, customer_id, window_start, groups, committed, revision
  FROM usage_ledger
  WHERE window_start >= :period_start AND window_start < :period_end
),
compared AS (
  SELECT
    coalesce(t.event_type, l.event_type) AS event_type,
    coalesce(t.customer_id, l.customer_id) AS customer_id,
    coalesce(t.window_start, l.window_start) AS window_start,
    coalesce(t.groups, l.groups) AS groups,
    coalesce(t.quantity, 0) - coalesce(l.committed, 0) AS delta,
    coalesce(l.revision, 0) + 1 AS revision
  FROM truth AS t
  FULL JOIN ledger AS l
    ON l.event_type = t.event_type
   AND l.customer_id = t.customer_id
   AND l.window_start = t.window_start
   AND l.groups = t.groups
),
changed AS (
  SELECT
    *,
    md5(concat_ws('|', event_type, customer_id,
                  to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                  groups::text, revision))::uuid::text AS transaction_id
  FROM compared
  WHERE delta <> 0
),
outbox AS (
  INSERT INTO usage_outbox
    (transaction_id, partition_key, event_type, customer_id, window_start, groups, revision, delta)
  SELECT transaction_id, :partition_key, event_type, customer_id, window_start, groups, revision, delta
  FROM changed
  RETURNING delta
),
ledger_moved AS (
  INSERT INTO usage_ledger AS l
    (event_type, customer_id, window_start, groups, committed, acknowledged, revision)
  SELECT event_type, customer_id, window_start, groups, delta, 0, revision
  FROM changed
  ON CONFLICT (event_type, window_start, customer_id, groups) DO UPDATE
    SET committed = l.committed + EXCLUDED.committed,
        revision = EXCLUDED.revision,
        updated_at = now()
  RETURNING 1
)
SELECT
  (SELECT count(*) FROM compared) AS compared,
  (SELECT count(*) FROM outbox) AS planned,
  (SELECT count(*) FROM ledger_moved) AS ledger_rows
