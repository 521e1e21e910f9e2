-- Sum of each billable metric's property per customer and window, plus per group value when the
-- query groups that metric, for the customers of one page (:customer_ids). :metrics is a JSON
-- array of {metric_id, event_type, property, group_key}; windows are :stride long, aligned on
-- :starting_on. Non-numeric property values count as nothing, like a missing property. Rows with
-- group_value_present = false are the ungrouped totals. The customers lead the index
-- sandbox_events_by_customer: the cost is that of the page's customers, not of the whole answer.
WITH metrics AS (
    SELECT *
    FROM jsonb_to_recordset(CAST(:metrics AS jsonb)) AS m(
        metric_id text, event_type text, property text, group_key text
    )
),
matched AS (
    SELECT
        e.customer_id,
        m.metric_id,
        date_bin(
            CAST(:stride AS interval), e.event_time, CAST(:starting_on AS timestamptz)
        ) AS window_start,
        e.properties ->> m.group_key AS group_value,
        e.properties ->> m.property AS quantity
    FROM sandbox_events e
    JOIN metrics m ON m.event_type = e.event_type
    WHERE NOT e.is_duplicate
      AND e.customer_id COLLATE "C" = ANY(CAST(:customer_ids AS text[]))
      AND e.event_type = ANY(CAST(:event_types AS text[]))
      AND e.event_time >= CAST(:starting_on AS timestamptz)
      AND e.event_time < CAST(:ending_before AS timestamptz)
)
SELECT
    customer_id,
    metric_id,
    window_start,
    group_value,
    GROUPING(group_value) = 0 AS group_value_present,
    COALESCE(
        sum(
            CASE
                WHEN quantity ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,4})?$'
                THEN CAST(quantity AS numeric)
            END
        ),
        0
    ) AS value
FROM matched
GROUP BY GROUPING SETS (
    (customer_id, metric_id, window_start),
    (customer_id, metric_id, window_start, group_value)
)
-- Events without the group key (or metrics queried without group_by) have no group row.
HAVING GROUPING(group_value) = 1 OR group_value IS NOT NULL
