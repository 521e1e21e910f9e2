-- These events failed permanently: park them in the DLQ with the API's answer.
WITH dead AS (
  UPDATE usage_outbox
  SET status = 'dead', attempts = attempts + 1
  WHERE transaction_id = ANY(:transaction_ids) AND status = 'pending'
  RETURNING transaction_id
)
INSERT INTO dead_letters (transaction_id, status_code, message, failed_at)
SELECT transaction_id, :status_code, :message, now() FROM dead
ON CONFLICT (transaction_id) DO UPDATE
  SET status_code = EXCLUDED.status_code,
      message = EXCLUDED.message,
      failed_at = EXCLUDED.failed_at,
      failures = dead_letters.failures + 1,
      resolved_at = NULL
