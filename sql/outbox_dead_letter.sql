-- These events failed permanently: park them in the DLQ with the API's answer. `retryable` is the
-- client's verdict (no answer, 408/409/429, 5xx, or x-should-retry: true): a later run or the
-- redrive sensor may deliver those; the others need their cause fixed first.
WITH dead AS (
  UPDATE usage_outbox
  SET status = 'dead', attempts = attempts + 1
  WHERE transaction_id = ANY(:transaction_ids) AND status = 'pending'
  RETURNING transaction_id
)
INSERT INTO dead_letters (transaction_id, status_code, message, retryable, failed_at)
SELECT transaction_id, :status_code, :message, :retryable, now() FROM dead
ON CONFLICT (transaction_id) DO UPDATE
  SET status_code = EXCLUDED.status_code,
      message = EXCLUDED.message,
      retryable = EXCLUDED.retryable,
      failed_at = EXCLUDED.failed_at,
      failures = dead_letters.failures + 1,
      resolved_at = NULL
