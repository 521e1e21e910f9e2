-- The pipeline's own tables. Every statement is idempotent: `usage-billing db init` re-runs this file.

-- Raw metrics store (docs/architecture.md, "Raw metrics": a contract). Rows are never updated or deleted by the pipeline.
CREATE TABLE IF NOT EXISTS raw_metrics (
  event_id     text PRIMARY KEY,
  customer_id  text NOT NULL,
  metric       text NOT NULL,
  occurred_at  timestamptz NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  value        numeric NOT NULL DEFAULT 1,
  properties   jsonb NOT NULL DEFAULT '{}'
);
-- Collectors scan one metric over a time window; INCLUDE makes the common scan index-only.
CREATE INDEX IF NOT EXISTS raw_metrics_metric_occurred_idx
  ON raw_metrics (metric, occurred_at) INCLUDE (customer_id, value);
-- Daily collectors group by (customer, UTC day): tell the planner how many groups that makes, so it
-- hashes instead of sorting millions of rows.
CREATE STATISTICS IF NOT EXISTS raw_metrics_customer_day_stats (ndistinct)
  ON customer_id, date_bin('1 day', occurred_at, timestamptz '2000-01-01 00:00:00+00')
  FROM raw_metrics;
-- Late-data detection (docs/architecture.md, "Late raw metrics"): the transaction that stored each
-- row. received_at is when that transaction began, so a row committed after a later-started one
-- falls behind a received_at cursor; "committed since snapshot S" = not visible in S, never skipped.
-- Rows stored before this column existed get the invalid xid 0 (older than every snapshot, and no
-- table rewrite); later rows get their transaction's id. The catalog check spares `db init` the
-- table lock once the column exists.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_attribute
                 WHERE attrelid = 'raw_metrics'::regclass AND attname = 'loaded_xid'
                   AND NOT attisdropped) THEN
    ALTER TABLE raw_metrics
      ADD COLUMN loaded_xid xid8 NOT NULL DEFAULT '0',
      ALTER COLUMN loaded_xid SET DEFAULT pg_current_xact_id();
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS raw_metrics_loaded_xid_idx ON raw_metrics (loaded_xid);
-- Replaced by raw_metrics_loaded_xid_idx: nothing reads received_at by range any more.
DROP INDEX IF EXISTS raw_metrics_received_idx;

-- Lines the loader could not accept, with the reason; re-tried by `usage-billing load --retry-quarantine`.
-- `line` is the line as read, except that a line over the loader's size limit keeps only its head
-- (line_truncated) and bytes text cannot hold (invalid UTF-8, NUL, lone surrogates) are written as
-- backslash escapes (line_escaped); such lines can never load and are not re-tried.
CREATE TABLE IF NOT EXISTS quarantined_metrics (
  id             bigserial PRIMARY KEY,
  source         text NOT NULL,
  line_number    integer NOT NULL,
  line           text NOT NULL,
  line_truncated boolean NOT NULL DEFAULT false,
  line_escaped   boolean NOT NULL DEFAULT false,
  reason         text NOT NULL,
  quarantined_at timestamptz NOT NULL DEFAULT now(),
  resolved_at    timestamptz
);
-- The same line of the same source is kept once. Hashed: a btree entry holds about 2.7 kB, and a
-- line (or a path) can be longer; the former UNIQUE (source, line_number, line) failed on them.
-- The catalog check spares `db init` the table lock once the migration is done.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_attribute
                 WHERE attrelid = 'quarantined_metrics'::regclass AND attname = 'line_escaped'
                   AND NOT attisdropped) THEN
    ALTER TABLE quarantined_metrics
      ADD COLUMN IF NOT EXISTS line_truncated boolean NOT NULL DEFAULT false,
      ADD COLUMN IF NOT EXISTS line_escaped boolean NOT NULL DEFAULT false,
      DROP CONSTRAINT IF EXISTS quarantined_metrics_source_line_number_line_key;
  END IF;
END $$;
CREATE UNIQUE INDEX IF NOT EXISTS quarantined_metrics_line_key
  ON quarantined_metrics (md5(source), line_number, md5(line));

-- Aggregated usage: what each collector computed, per customer, window and group, for a partition.
CREATE TABLE IF NOT EXISTS aggregated_usage (
  billable_metric text NOT NULL,
  customer_id     text NOT NULL,
  window_start    timestamptz NOT NULL,
  groups          jsonb NOT NULL DEFAULT '{}',
  value           numeric NOT NULL,
  computed_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (billable_metric, window_start, customer_id, groups)
);

-- What each collector partition was last computed from: the clock, the transaction snapshot of
-- the raw rows it read, the statement that read them, and what it wrote. A re-run whose inputs
-- have not changed since keeps the rows (collectors.replace_partition); the insights read such a
-- partition instead of computing it again (usage_history.read). rows and total catch a hand edit.
CREATE TABLE IF NOT EXISTS aggregated_usage_state (
  billable_metric text NOT NULL,
  period_start    timestamptz NOT NULL,
  period_end      timestamptz NOT NULL,
  as_of           timestamptz NOT NULL,
  snapshot        pg_snapshot NOT NULL,
  statement_sha   text NOT NULL,
  rows            bigint NOT NULL,
  total           numeric NOT NULL,
  computed_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (billable_metric, period_start, period_end)
);

-- Usage events: aggregated usage in the billing API's event shape, the truth that reporting diffs
-- against the ledger. One row per (event_type, customer, window, group).
CREATE TABLE IF NOT EXISTS usage_events (
  event_type   text NOT NULL,
  customer_id  text NOT NULL,
  window_start timestamptz NOT NULL,
  groups       jsonb NOT NULL DEFAULT '{}',
  quantity     numeric NOT NULL,
  properties   jsonb NOT NULL,
  PRIMARY KEY (event_type, window_start, customer_id, groups)
);

-- Reporting ledger: per (event type, customer, window, group), what has been committed to the outbox
-- (`committed`, acknowledged or not) and what the billing API has acknowledged. A run reports
-- truth - committed; `revision` numbers the deltas and makes their transaction ids deterministic.
CREATE TABLE IF NOT EXISTS usage_ledger (
  event_type   text NOT NULL,
  customer_id  text NOT NULL,
  window_start timestamptz NOT NULL,
  groups       jsonb NOT NULL DEFAULT '{}',
  committed    numeric NOT NULL,
  acknowledged numeric NOT NULL DEFAULT 0,
  revision     integer NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_type, window_start, customer_id, groups)
);

-- Outbox: every delta, written with its transaction id before any send, then acknowledged or dead.
CREATE TABLE IF NOT EXISTS usage_outbox (
  transaction_id  text PRIMARY KEY,
  partition_key   text NOT NULL,
  event_type      text NOT NULL,
  customer_id     text NOT NULL,
  window_start    timestamptz NOT NULL,
  groups          jsonb NOT NULL DEFAULT '{}',
  revision        integer NOT NULL,
  delta           numeric NOT NULL,
  status          text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'acknowledged', 'dead')),
  attempts        integer NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT now(),
  acknowledged_at timestamptz
);
CREATE INDEX IF NOT EXISTS usage_outbox_partition_idx ON usage_outbox (partition_key, status);
-- What is not delivered yet (the redrive sensor's question), without scanning delivered history.
CREATE INDEX IF NOT EXISTS usage_outbox_undelivered_idx ON usage_outbox (created_at)
  WHERE status <> 'acknowledged';

-- Dead-letter queue: outbox events that failed permanently, with the API's answer; redrive resends
-- them with the same transaction ids and sets resolved_at once they are acknowledged.
CREATE TABLE IF NOT EXISTS dead_letters (
  transaction_id text PRIMARY KEY REFERENCES usage_outbox (transaction_id),
  status_code    integer,
  message        text NOT NULL,
  retryable      boolean NOT NULL DEFAULT false,
  failures       integer NOT NULL DEFAULT 1,
  failed_at      timestamptz NOT NULL DEFAULT now(),
  resolved_at    timestamptz
);

ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS retryable boolean NOT NULL DEFAULT false;

-- Known customers (billing API customer ids or ingest aliases). When it has rows, usage for any other
-- customer id is an invalid value that blocks reporting.
CREATE TABLE IF NOT EXISTS customers (
  customer_id text PRIMARY KEY,
  name        text,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Alert incidents: one notification per incident (a failing check, exhausted retries, a usage
-- spike, a commit at risk), until it is resolved. An open incident with notified_at NULL is an
-- alert still to deliver (the deliver_alerts sensor sends summary and details).
CREATE TABLE IF NOT EXISTS alert_incidents (
  incident_key text PRIMARY KEY,
  summary      text NOT NULL,
  opened_at    timestamptz NOT NULL DEFAULT now(),
  notified_at  timestamptz,
  resolved_at  timestamptz
);
ALTER TABLE alert_incidents ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '[]';

-- Priced usage (the priced_usage assets): a month's line items per customer and billable metric,
-- quantity = the month's aggregated usage, amount = quantity x the rate card's price rounded to
-- cents (ROUND_HALF_UP) once; rate_card_sha256 names the card that priced it.
CREATE TABLE IF NOT EXISTS invoice_line_items (
  month            text NOT NULL,
  customer_id      text NOT NULL,
  billable_metric  text NOT NULL,
  quantity         numeric NOT NULL,
  amount           numeric NOT NULL,
  rate_card_sha256 text NOT NULL,
  priced_at        timestamptz NOT NULL,
  PRIMARY KEY (month, customer_id, billable_metric)
);

-- A month's total per customer: the sum of its rounded line items.
CREATE TABLE IF NOT EXISTS invoice_totals (
  month       text NOT NULL,
  customer_id text NOT NULL,
  total       numeric NOT NULL,
  line_items  integer NOT NULL,
  priced_at   timestamptz NOT NULL,
  PRIMARY KEY (month, customer_id)
);

-- Commit burn-down as of the last run of the commit_burndown asset (usage-billing commits).
CREATE TABLE IF NOT EXISTS commit_burndown (
  customer_id                text NOT NULL,
  starts_on                  date NOT NULL,
  ends_before                date NOT NULL,
  commit_amount              numeric NOT NULL,
  consumed                   numeric NOT NULL,
  remaining                  numeric NOT NULL,
  projected_consumed_by_end  numeric NOT NULL,
  projected_exhaustion_date  date,
  will_exceed                boolean NOT NULL,
  as_of                      timestamptz NOT NULL,
  PRIMARY KEY (customer_id, starts_on)
);
