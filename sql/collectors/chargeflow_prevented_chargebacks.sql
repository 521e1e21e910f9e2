-- billable_metric: chargeflow_prevented_chargebacks
-- description: Chargeflow prevented chargebacks ($39 each): distinct alerts whose latest outcome is prevented, on the UTC day of that event.
-- raw_metric: chargeback_alert(alert_id, outcome)
-- restatement_horizon_days: 30
--
-- docs/architecture.md, "Billable metrics". How this file reads the points the definition leaves open:
-- * An alert is (customer_id, alert_id). Latest = greatest (occurred_at, event_id), event_id
--   compared byte-wise (COLLATE "C") so the tie-break does not depend on the database's locale.
-- * Only events with occurred_at <= :as_of are known. An alert whose outcome flips from prevented
--   to not_prevented (the issuer filed the chargeback anyway) leaves the prevented day's period;
--   one prevented again counts once, on the day of its newest prevented event.
-- Restatement horizon 30 days: alert networks want an answer within 72 h, but a chargeback that
-- is filed despite the refund reaches the merchant, and flips the outcome, within a few weeks.
SELECT
  e.customer_id,
  date_trunc('day', e.occurred_at, 'UTC') AS window_start,
  '{}'::jsonb AS groups,
  count(*)::numeric AS value
FROM raw_metrics AS e
WHERE e.metric = 'chargeback_alert'
  AND e.properties ->> 'outcome' = 'prevented'
  AND e.occurred_at >= :period_start
  AND e.occurred_at < :period_end
  AND e.occurred_at <= :as_of
  AND NOT EXISTS (
    -- a later event of the same alert decides instead; one latest event per alert means
    -- count(*) counts distinct alerts
    SELECT 1
    FROM raw_metrics AS l
    WHERE l.metric = 'chargeback_alert'
      AND l.customer_id = e.customer_id
      AND l.properties ->> 'alert_id' = e.properties ->> 'alert_id'
      AND l.occurred_at <= :as_of
      AND l.occurred_at >= e.occurred_at
      AND (l.occurred_at > e.occurred_at OR l.event_id COLLATE "C" > e.event_id COLLATE "C")
  )
GROUP BY 1, 2
