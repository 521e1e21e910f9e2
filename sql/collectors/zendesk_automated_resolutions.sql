-- billable_metric: zendesk_automated_resolutions
-- description: Zendesk automated resolutions: tickets with an AI answer and never a human handoff, counted once on the UTC day they settle (72 h after the ticket's last event); unsettled tickets are not billable yet.
-- raw_metric: support_event(ticket_id, kind, bot)
-- restatement_horizon_days: 3
-- clock_offsets_hours: 72
--
-- docs/architecture.md, "Billable metrics". How this file reads the points the definition leaves open:
-- * A ticket is (customer_id, ticket_id), and only support events with bot = 'zendesk' belong to
--   it. Every kind counts as an event of the ticket, customer messages included.
-- * Only events with occurred_at <= :as_of are known. The ticket is judged on all its known
--   events: its last event, "at least one ai_answer" and "no human_handoff ever" all look at the
--   ticket's whole known history, not at a window.
-- * Settled when :as_of >= last event + 72 h (72 h have passed at that instant); counted on the
--   UTC day of last event + 72 h. A ticket is counted at most once.
-- * A reopened ticket (a new event after it had settled) is judged again as a whole: its last
--   event moves, so it settles, and is counted, on the later day, and the earlier day loses it
--   (a restatement); a handoff on reopening makes it never billable. So the value of a period is
--   a pure function of the events known at :as_of, and counting once holds across periods.
-- Restatement horizon 3 days (docs/architecture.md, "Billable metrics"): covers support events delivered late by the helpdesk
-- integration and reopenings soon after settlement. A ticket reopened later than that still moves
-- to its new settlement day; the old period keeps it unless that period is re-materialized.
WITH settling AS (
  -- tickets with an event that could be their last one for a settlement inside the period
  SELECT DISTINCT customer_id, properties ->> 'ticket_id' AS ticket_id
  FROM raw_metrics
  WHERE metric = 'support_event'
    AND properties ->> 'bot' = 'zendesk'
    AND occurred_at >= :period_start - interval '72 hours'
    AND occurred_at < :period_end - interval '72 hours'
    AND occurred_at <= :as_of - interval '72 hours'
),
tickets AS (
  SELECT
    s.customer_id,
    max(e.occurred_at) + interval '72 hours' AS settled_at,
    bool_or(e.properties ->> 'kind' = 'ai_answer') AS answered_by_ai,
    bool_or(e.properties ->> 'kind' = 'human_handoff') AS handed_off
  FROM settling AS s
  JOIN raw_metrics AS e
    ON e.metric = 'support_event'
   AND e.customer_id = s.customer_id
   AND e.properties ->> 'ticket_id' = s.ticket_id
   AND e.properties ->> 'bot' = 'zendesk'
  WHERE e.occurred_at <= :as_of
  GROUP BY s.customer_id, s.ticket_id
)
SELECT
  customer_id,
  date_trunc('day', settled_at, 'UTC') AS window_start,
  '{}'::jsonb AS groups,
  count(*)::numeric AS value
FROM tickets
WHERE answered_by_ai
  AND NOT handed_off
  AND settled_at <= :as_of
  AND settled_at >= :period_start
  AND settled_at < :period_end
GROUP BY 1, 2
