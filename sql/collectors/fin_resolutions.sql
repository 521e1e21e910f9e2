-- billable_metric: fin_resolutions
-- description: Intercom Fin resolutions ($0.99 each): tickets whose first resolution (confirmed or assumed) is not followed by a human handoff within 24 h, billed once that window has passed, on the UTC day of the resolution.
-- raw_metric: support_event(ticket_id, kind, bot)
-- restatement_horizon_days: 3
-- settles_after_hours: 24
-- clock_offsets_hours: 24
--
-- docs/architecture.md, "Billable metrics". How this file reads the points the definition leaves open:
-- * A ticket is (customer_id, ticket_id), and only support events with bot = 'fin' belong to Fin:
--   resolutions and handoffs alike. `bot` is required because neither support collector can
--   attribute an event without it.
-- * Resolution time r = the earliest resolution_confirmed or resolution_assumed of the ticket.
--   Later resolutions of the same ticket change nothing ("billable once").
-- * The handoff window [r, r + 24h] is closed, as written (unlike Agentforce's half-open
--   [t, t + 24h)): a handoff at exactly r or exactly r + 24h cancels the resolution; a handoff
--   before r does not (the ticket came back to Fin and Fin resolved it).
-- * "Only once that window has passed": billable when :as_of > r + 24h, strictly, because a
--   handoff can still happen at the window's last instant r + 24h. Until then the ticket is not
--   billable yet; it is counted on the day of r, so a period changes up to 24 h after it ends.
-- * Only events with occurred_at <= :as_of are known; once r + 24h < :as_of every event that can
--   cancel the resolution is known, so the outcome no longer depends on the clock.
-- Restatement horizon 3 days: 24 h of settlement after the last resolution of the period, plus
-- two days for support events delivered late by the helpdesk integration.
WITH first_resolutions AS (
  SELECT e.customer_id, e.properties ->> 'ticket_id' AS ticket_id, min(e.occurred_at) AS resolved_at
  FROM raw_metrics AS e
  WHERE e.metric = 'support_event'
    AND e.properties ->> 'bot' = 'fin'
    AND e.properties ->> 'kind' IN ('resolution_confirmed', 'resolution_assumed')
    AND e.occurred_at >= :period_start
    AND e.occurred_at < :period_end
    AND e.occurred_at < :as_of - interval '24 hours'
  GROUP BY 1, 2
)
SELECT
  r.customer_id,
  date_trunc('day', r.resolved_at, 'UTC') AS window_start,
  '{}'::jsonb AS groups,
  count(*)::numeric AS value
FROM first_resolutions AS r
WHERE NOT EXISTS (
    -- an earlier resolution, possibly in an earlier period, is the ticket's resolution time
    SELECT 1
    FROM raw_metrics AS p
    WHERE p.metric = 'support_event'
      AND p.customer_id = r.customer_id
      AND p.properties ->> 'ticket_id' = r.ticket_id
      AND p.properties ->> 'bot' = 'fin'
      AND p.properties ->> 'kind' IN ('resolution_confirmed', 'resolution_assumed')
      AND p.occurred_at < r.resolved_at
  )
  AND NOT EXISTS (
    SELECT 1
    FROM raw_metrics AS h
    WHERE h.metric = 'support_event'
      AND h.customer_id = r.customer_id
      AND h.properties ->> 'ticket_id' = r.ticket_id
      AND h.properties ->> 'bot' = 'fin'
      AND h.properties ->> 'kind' = 'human_handoff'
      AND h.occurred_at >= r.resolved_at
      AND h.occurred_at <= r.resolved_at + interval '24 hours'
  )
GROUP BY 1, 2
