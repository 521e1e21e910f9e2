-- billable_metric: riskified_approved_value
-- description: Riskified approved value (billed at 0.4 percent): sum of the amount of orders whose latest decision is approved and that have no fraud chargeback known now, on the UTC day of the approval.
-- raw_metric: transaction_decision(order_id, decision, amount?: decimal)
-- raw_metric: fraud_chargeback(order_id)
-- restatement_horizon_days: 120
--
-- docs/architecture.md, "Billable metrics". How this file reads the points the definition leaves open:
-- * An order is (customer_id, order_id); a fraud chargeback belongs to the order with the same
--   customer_id and order_id. Latest decision = greatest (occurred_at, event_id), event_id compared
--   byte-wise (COLLATE "C") so the tie-break does not depend on the database's locale.
-- * The approval is the order's latest known decision when that is approved; its day is the day
--   of that decision (an order declined, then approved on review, counts on the review's day).
-- * "Known now" = occurred_at <= :as_of, for decisions and for chargebacks alike. received_at is
--   not used: it is the database's wall clock at load time, which the pipeline clock (pinned in
--   tests and replays) cannot see, and a producer never sends an event dated in the future. Any
--   known fraud chargeback of the order cancels it, whenever it is dated, so one arriving weeks
--   later restates the approval's period.
-- * Amount: the order's latest stated amount, i.e. `amount` of the approving decision, or, when
--   that decision does not repeat it, of the order's latest earlier decision that has one. So
--   `amount` is not a required property (a decline needs none). It is a decimal string (a JSON
--   number is read exactly too) cast to numeric; the header types it, so the loader quarantines
--   a line whose amount is not a non-negative decimal and the cast cannot fail a month's run.
-- Restatement horizon 120 days (docs/architecture.md, "Billable metrics"): card networks accept fraud chargebacks up to 120
-- days after the transaction.
WITH approvals AS (
  -- approved decisions that are still their order's latest known decision
  SELECT e.event_id, e.customer_id, e.properties ->> 'order_id' AS order_id, e.occurred_at,
         (e.properties ->> 'amount')::numeric AS amount
  FROM raw_metrics AS e
  WHERE e.metric = 'transaction_decision'
    AND e.properties ->> 'decision' = 'approved'
    AND e.occurred_at >= :period_start
    AND e.occurred_at < :period_end
    AND e.occurred_at <= :as_of
    AND NOT EXISTS (
      SELECT 1
      FROM raw_metrics AS l
      WHERE l.metric = 'transaction_decision'
        AND l.customer_id = e.customer_id
        AND l.properties ->> 'order_id' = e.properties ->> 'order_id'
        AND l.occurred_at <= :as_of
        AND l.occurred_at >= e.occurred_at
        AND (l.occurred_at > e.occurred_at OR l.event_id COLLATE "C" > e.event_id COLLATE "C")
    )
),
fraud_free AS (
  SELECT
    a.customer_id,
    a.occurred_at,
    coalesce(
      a.amount,
      (
        -- the approval did not repeat the amount: the order's latest earlier stated one
        SELECT (d.properties ->> 'amount')::numeric
        FROM raw_metrics AS d
        WHERE d.metric = 'transaction_decision'
          AND d.customer_id = a.customer_id
          AND d.properties ->> 'order_id' = a.order_id
          AND d.properties ->> 'amount' IS NOT NULL
          AND d.occurred_at <= a.occurred_at
        ORDER BY d.occurred_at DESC, d.event_id COLLATE "C" DESC
        LIMIT 1
      )
    ) AS amount
  FROM approvals AS a
  WHERE NOT EXISTS (
    SELECT 1
    FROM raw_metrics AS f
    WHERE f.metric = 'fraud_chargeback'
      AND f.customer_id = a.customer_id
      AND f.properties ->> 'order_id' = a.order_id
      AND f.occurred_at <= :as_of
  )
)
SELECT
  customer_id,
  date_trunc('day', occurred_at, 'UTC') AS window_start,
  '{}'::jsonb AS groups,
  coalesce(sum(amount), 0) AS value
FROM fraud_free
GROUP BY 1, 2
