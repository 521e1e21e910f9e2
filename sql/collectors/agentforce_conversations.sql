-- billable_metric: agentforce_conversations
-- description: Agentforce conversations ($2 each): per conversation, greedy 24 h windows opened by a customer message or a customer menu option other than End Chat, counted on the UTC day of the opening action.
-- raw_metric: chat_action(conversation_id, actor, action)
-- restatement_horizon_days: 3
--
-- docs/architecture.md, "Billable metrics". How this file reads the points the definition leaves open:
-- * A conversation is (customer_id, conversation_id): ids are only unique per customer.
-- * Qualifying action: actor = 'customer' and (action = 'message' or (action = 'menu_option' and
--   option is not exactly 'End Chat')). Values compare exactly (case-sensitive), like events_sent.
--   A menu option without an `option` property is "other than End Chat", so it qualifies; that is
--   why `option` is not a required property. Agent actions and any other action never qualify.
-- * Windows are [t, t + 24h): an action exactly 24 h after the opener opens the next window.
--   Several actions at the same instant open at most one window.
-- * Only actions with occurred_at <= :as_of are known (the pipeline clock; nothing is in the future
--   in production, and tests can replay the past).
-- * The chain of windows is causal: a window opened inside the period depends on the
--   conversation's history before the period but never on actions after it.
-- Restatement horizon 3 days: chat actions come from the messaging backend within minutes; its
-- webhook deliveries are retried for up to 72 h, after which a period's windows no longer change.
-- A late action at the end of a month can move the next month's openers, but that is a change of
-- the next month, inside its own horizon.
--
-- How: only qualifying actions of the period are scanned, plus the full history (before the
-- period) of conversations active in the 24 h before it: any other conversation's first action in
-- the period opens a window whatever came before. Within a conversation, an action that comes 24 h
-- or more after the previous one starts a "session" and always opens a window; actions within 24 h
-- of their session's start are covered by that first window. Only the rest ("overflow": sessions
-- longer than a day, rare) needs the greedy chain, which a recursive CTE steps for every
-- conversation at once through precomputed next-window pointers. Measured at 10M chat actions in
-- docs/benchmarks.md; sql/collector_indexes.sql has the index the history lookup uses.
WITH RECURSIVE in_period AS (
  SELECT customer_id, properties ->> 'conversation_id' AS conversation_id, occurred_at
  FROM raw_metrics
  WHERE metric = 'chat_action'
    AND occurred_at >= :period_start
    AND occurred_at < :period_end
    AND occurred_at <= :as_of
    AND properties ->> 'actor' = 'customer'
    AND (
      properties ->> 'action' = 'message'
      OR (properties ->> 'action' = 'menu_option'
          AND properties ->> 'option' IS DISTINCT FROM 'End Chat')
    )
),
carried AS (
  SELECT DISTINCT customer_id, properties ->> 'conversation_id' AS conversation_id
  FROM raw_metrics
  WHERE metric = 'chat_action'
    AND occurred_at >= :period_start - interval '24 hours'
    AND occurred_at < :period_start
    AND occurred_at <= :as_of
    AND properties ->> 'actor' = 'customer'
    AND (
      properties ->> 'action' = 'message'
      OR (properties ->> 'action' = 'menu_option'
          AND properties ->> 'option' IS DISTINCT FROM 'End Chat')
    )
),
history AS (
  SELECT r.customer_id, c.conversation_id, r.occurred_at
  FROM carried AS c
  JOIN raw_metrics AS r
    ON r.metric = 'chat_action'
   AND r.customer_id = c.customer_id
   AND r.properties ->> 'conversation_id' = c.conversation_id
  WHERE r.occurred_at < :period_start
    AND r.occurred_at <= :as_of
    AND r.properties ->> 'actor' = 'customer'
    AND (
      r.properties ->> 'action' = 'message'
      OR (r.properties ->> 'action' = 'menu_option'
          AND r.properties ->> 'option' IS DISTINCT FROM 'End Chat')
    )
),
actions AS (
  SELECT customer_id, conversation_id, occurred_at FROM in_period
  UNION ALL
  SELECT customer_id, conversation_id, occurred_at FROM history
),
gaps AS (
  -- conversation_hash leads the partition key only to speed up the sort (an integer compare
  -- instead of two strings); the text columns keep the partitions exact.
  SELECT
    customer_id,
    conversation_id,
    conversation_hash,
    occurred_at,
    coalesce(
      occurred_at >= lag(occurred_at) OVER conversation + interval '24 hours', true
    ) AS starts_session
  FROM (SELECT *, hashtextextended(conversation_id, 0) AS conversation_hash FROM actions) AS a
  WINDOW conversation AS (
    PARTITION BY conversation_hash, customer_id, conversation_id ORDER BY occurred_at
  )
),
sessions AS (
  SELECT
    customer_id,
    conversation_id,
    occurred_at,
    starts_session,
    max(occurred_at) FILTER (WHERE starts_session) OVER (
      PARTITION BY conversation_hash, customer_id, conversation_id ORDER BY occurred_at
      ROWS UNBOUNDED PRECEDING
    ) AS session_start
  FROM gaps
),
relevant AS (
  -- Session starts, and the actions a session's first window does not cover.
  SELECT customer_id, conversation_id, session_start, occurred_at, starts_session
  FROM sessions
  WHERE starts_session OR occurred_at >= session_start + interval '24 hours'
),
overflow AS MATERIALIZED (
  -- next_pos: the first action at or after t + 24h is the one after every action before t + 24h
  -- (timestamps are whole microseconds, so "before t + 24h" is "at most t + 24h - 1 microsecond").
  SELECT
    customer_id,
    conversation_id,
    session_start,
    occurred_at,
    row_number() OVER chain_order AS pos,
    count(*) OVER (
      chain_order RANGE BETWEEN UNBOUNDED PRECEDING AND interval '86399.999999 seconds' FOLLOWING
    ) + 1 AS next_pos
  FROM relevant
  WHERE NOT starts_session
  WINDOW chain_order AS (
    PARTITION BY customer_id, conversation_id, session_start ORDER BY occurred_at
  )
),
chain AS (
  SELECT customer_id, conversation_id, session_start, occurred_at, next_pos
  FROM overflow
  WHERE pos = 1
  UNION ALL
  SELECT o.customer_id, o.conversation_id, o.session_start, o.occurred_at, o.next_pos
  FROM chain AS c
  JOIN overflow AS o
    ON o.customer_id = c.customer_id
   AND o.conversation_id = c.conversation_id
   AND o.session_start = c.session_start
   AND o.pos = c.next_pos
),
openers AS (
  SELECT customer_id, occurred_at FROM relevant WHERE starts_session
  UNION ALL
  SELECT customer_id, occurred_at FROM chain
)
SELECT
  customer_id,
  date_trunc('day', occurred_at, 'UTC') AS window_start,
  '{}'::jsonb AS groups,
  count(*)::numeric AS value
FROM openers
WHERE occurred_at >= :period_start
  AND occurred_at < :period_end
-- hashtext(customer_id) only makes the sort cheaper, as in gaps
GROUP BY hashtext(customer_id), 1, 2
