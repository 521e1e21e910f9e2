-- A session-local staging table: COPY lands validated lines here, one INSERT moves them. Emptied at
-- commit, so each chunk (one transaction) starts from nothing.
CREATE TEMP TABLE IF NOT EXISTS raw_metrics_staging (
  line_number bigint NOT NULL,
  event_id    text NOT NULL,
  customer_id text NOT NULL,
  metric      text NOT NULL,
  occurred_at timestamptz NOT NULL,
  value       numeric NOT NULL,
  document    jsonb NOT NULL
) ON COMMIT DELETE ROWS
