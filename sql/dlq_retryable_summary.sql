-- Dead letters that died of unavailability (no answer, 408/409/429, 5xx): a redrive may fix them.
SELECT count(*) AS letters, max(d.failed_at) AS last_failed
FROM dead_letters AS d
JOIN usage_outbox AS o USING (transaction_id)
WHERE o.status = 'dead' AND d.resolved_at IS NULL
  AND (d.status_code IS NULL OR d.status_code IN (408, 409, 429) OR d.status_code >= 500)
