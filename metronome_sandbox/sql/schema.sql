-- Tables of the Metronome-compatible sandbox (metronome_sandbox). Idempotent.

-- Every ingested event, duplicates included (flagged), in acceptance order (seq).
CREATE TABLE IF NOT EXISTS sandbox_events (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             uuid NOT NULL,
    transaction_id text NOT NULL,
    customer_id    text NOT NULL,
    event_type     text NOT NULL,
    event_time     timestamptz NOT NULL,
    properties     jsonb NOT NULL DEFAULT '{}',
    accepted_at    timestamptz NOT NULL,
    is_duplicate   boolean NOT NULL
);

-- /v1/events/search looks events up by transaction id.
CREATE INDEX IF NOT EXISTS sandbox_events_transaction_id ON sandbox_events (transaction_id);

-- /v1/usage pages by customer (keyset, byte order): the next customers of a page, then their
-- events of the queried types over the time range, never duplicates.
CREATE INDEX IF NOT EXISTS sandbox_events_by_customer
    ON sandbox_events (customer_id COLLATE "C", event_type, event_time) WHERE NOT is_duplicate;
-- It replaces the index by (event_type, event_time) of earlier versions: with both, a planner
-- without fresh statistics (right after a bulk ingest) chose the time index and aggregated the
-- whole answer for every page again.
DROP INDEX IF EXISTS sandbox_events_usage;

-- The de-duplication index: the last accepted event per transaction id. A transaction id whose
-- acceptance is older than 34 days may be accepted again (Metronome's dedupe window).
CREATE TABLE IF NOT EXISTS sandbox_transactions (
    transaction_id text PRIMARY KEY,
    event_id       uuid NOT NULL,
    accepted_at    timestamptz NOT NULL
);
