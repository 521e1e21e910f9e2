-- Indexes (and one statistics object) for the outcome-based collectors (sql/collectors/*.sql).
-- Idempotent: run after schema.sql.
--
-- A collector scans its period through raw_metrics_metric_occurred_idx, then looks up the history of
-- the entities (conversation, ticket, dispute, alert, order) it found there: a conversation's actions
-- before the period, a ticket's whole life, a later status of a dispute or an alert, a later decision
-- or a fraud chargeback of an order. Without these the lookups would scan every earlier row of the
-- metric, so a month's cost would grow with the store's history. Partial (one metric each) and keyed
-- the way the collectors join: customer_id, the entity id, then occurred_at for range conditions.
CREATE INDEX IF NOT EXISTS raw_metrics_chat_action_conversation_idx
  ON raw_metrics (customer_id, (properties ->> 'conversation_id'), occurred_at)
  WHERE metric = 'chat_action';
CREATE INDEX IF NOT EXISTS raw_metrics_support_event_ticket_idx
  ON raw_metrics (customer_id, (properties ->> 'ticket_id'), occurred_at)
  WHERE metric = 'support_event';
CREATE INDEX IF NOT EXISTS raw_metrics_chargeback_dispute_idx
  ON raw_metrics (customer_id, (properties ->> 'dispute_id'), occurred_at)
  WHERE metric = 'chargeback_dispute';
CREATE INDEX IF NOT EXISTS raw_metrics_chargeback_alert_idx
  ON raw_metrics (customer_id, (properties ->> 'alert_id'), occurred_at)
  WHERE metric = 'chargeback_alert';
CREATE INDEX IF NOT EXISTS raw_metrics_transaction_decision_order_idx
  ON raw_metrics (customer_id, (properties ->> 'order_id'), occurred_at)
  WHERE metric = 'transaction_decision';
CREATE INDEX IF NOT EXISTS raw_metrics_fraud_chargeback_order_idx
  ON raw_metrics (customer_id, (properties ->> 'order_id'))
  WHERE metric = 'fraud_chargeback';

-- Statistics on the chat properties the Agentforce collector filters on. Without them PostgreSQL
-- guesses that a jsonb equality keeps 0.5 percent of the rows, plans the month's 5 million qualifying
-- actions as a few hundred and sorts them in one process; with them it sorts in parallel
-- (about 15 percent faster at 10M actions, docs/benchmarks.md). ANALYZE (autovacuum) maintains them.
CREATE STATISTICS IF NOT EXISTS raw_metrics_chat_action_props
  ON (properties ->> 'actor'), (properties ->> 'action'), (properties ->> 'option')
  FROM raw_metrics;
