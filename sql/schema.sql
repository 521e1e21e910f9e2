-- The pipeline's own tables. Every statement is idempotent: `usage-billing db init` re-runs this file.

-- Raw metrics store (DESIGN.md §4, contract). Rows are never updated or deleted by the pipeline.
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
-- Late-data detection: what arrived since a partition was last reported.
CREATE INDEX IF NOT EXISTS raw_metrics_received_idx ON raw_metrics (received_at);

-- Lines the loader could not accept, with the reason; re-tried by `usage-billing load --retry-quarantine`.
CREATE TABLE IF NOT EXISTS quarantined_metrics (
  id             bigserial PRIMARY KEY,
  source         text NOT NULL,
  line_number    integer NOT NULL,
  line           text NOT NULL,
  reason         text NOT NULL,
  quarantined_at timestamptz NOT NULL DEFAULT now(),
  resolved_at    timestamptz,
  UNIQUE (source, line_number, line)
);

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
