-- billable_metric: chargeflow_recovered_amount
-- description: Chargeflow recovered amount (billed at 25 percent): sum of the amount of disputes whose latest status is won, on the UTC day of that won event.
-- raw_metric: chargeback_dispute(dispute_id, status, amount?: decimal)
-- restatement_horizon_days: 60
--
-- docs/architecture.md, "Billable metrics". How this file reads the points the definition leaves open:
-- * A dispute is (customer_id, dispute_id). Latest = greatest (occurred_at, event_id), event_id
--   compared byte-wise (COLLATE "C") so the tie-break does not depend on the database's locale.
-- * Only events with occurred_at <= :as_of are known: the latest status is the latest known one.
--   A dispute that flips (won, then lost on pre-arbitration) leaves the won day's period; one that
--   is won again counts on the day of the newest won event.
-- * Amount: the dispute's latest stated amount, i.e. `amount` of the won event itself, or, when
--   that event does not repeat it, of the dispute's latest earlier event that has one. So `amount`
--   is not a required property (pending and lost updates need none). It is a decimal string (a
--   JSON number is read exactly too) cast to numeric. The header types it (`amount?: decimal`),
--   so the loader quarantines a line whose amount is not a non-negative decimal and the cast
--   cannot fail a month's run.
-- Restatement horizon 60 days: a won dispute can still be reversed in pre-arbitration, which card
-- networks allow about 30 days after the representment decision, plus time for the processor to
-- report it.
WITH won AS (
  -- won events that are still their dispute's latest known event
  SELECT e.event_id, e.customer_id, e.properties ->> 'dispute_id' AS dispute_id, e.occurred_at,
         (e.properties ->> 'amount')::numeric AS amount
  FROM raw_metrics AS e
  WHERE e.metric = 'chargeback_dispute'
    AND e.properties ->> 'status' = 'won'
    AND e.occurred_at >= :period_start
    AND e.occurred_at < :period_end
    AND e.occurred_at <= :as_of
    AND NOT EXISTS (
      SELECT 1
      FROM raw_metrics AS l
      WHERE l.metric = 'chargeback_dispute'
        AND l.customer_id = e.customer_id
        AND l.properties ->> 'dispute_id' = e.properties ->> 'dispute_id'
        AND l.occurred_at <= :as_of
        AND l.occurred_at >= e.occurred_at
        AND (l.occurred_at > e.occurred_at OR l.event_id COLLATE "C" > e.event_id COLLATE "C")
    )
),
amounts AS (
  SELECT
    w.customer_id,
    w.occurred_at,
    coalesce(
      w.amount,
      (
        -- the won event did not repeat the amount: the dispute's latest earlier stated one
        SELECT (a.properties ->> 'amount')::numeric
        FROM raw_metrics AS a
        WHERE a.metric = 'chargeback_dispute'
          AND a.customer_id = w.customer_id
          AND a.properties ->> 'dispute_id' = w.dispute_id
          AND a.properties ->> 'amount' IS NOT NULL
          AND a.occurred_at <= w.occurred_at
        ORDER BY a.occurred_at DESC, a.event_id COLLATE "C" DESC
        LIMIT 1
      )
    ) AS amount
  FROM won AS w
)
SELECT
  customer_id,
  date_trunc('day', occurred_at, 'UTC') AS window_start,
  '{}'::jsonb AS groups,
  coalesce(sum(amount), 0) AS value
FROM amounts
GROUP BY 1, 2
