-- One keyset page of a usage answer's customers: those with at least one non-duplicate event of
-- the queried event types in [:starting_on, :ending_before), in byte order, from :from_customer on
-- (inclusive; '' for the first page), at most :count. A loose index scan: each step asks the index
-- sandbox_events_by_customer for the first matching event after the previous customer, so a page
-- costs the same wherever it starts, and no plan can sort the whole answer first (one LIMIT 1
-- per step), even without statistics right after a bulk ingest.
WITH RECURSIVE usage_events AS NOT MATERIALIZED (
    SELECT customer_id COLLATE "C" AS customer_id
    FROM sandbox_events
    WHERE NOT is_duplicate
      AND event_type = ANY(CAST(:event_types AS text[]))
      AND event_time >= CAST(:starting_on AS timestamptz)
      AND event_time < CAST(:ending_before AS timestamptz)
),
page (customer_id, found) AS (
    SELECT first.customer_id, 1
    FROM (
        SELECT customer_id
        FROM usage_events
        WHERE customer_id >= CAST(:from_customer AS text)
        ORDER BY customer_id
        LIMIT 1
    ) AS first
    UNION ALL
    SELECT following.customer_id, page.found + 1
    FROM page
    CROSS JOIN LATERAL (
        SELECT customer_id
        FROM usage_events
        WHERE customer_id > page.customer_id
        ORDER BY customer_id
        LIMIT 1
    ) AS following
    WHERE page.found < :count
)
SELECT customer_id FROM page
