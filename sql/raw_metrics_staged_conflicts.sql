-- After raw_metrics_insert_staged.sql, in the same transaction but a new snapshot (READ COMMITTED,
-- so it sees rows a concurrent load committed while the insert waited for them): which of the given
-- staged lines (those the insert did not store) have an event_id stored with other content, and
-- which fields differ. Equality is semantic: instants, numbers and jsonb values compare by value,
-- not by how the line spelled them.
SELECT s.line_number, s.event_id,
       array_remove(ARRAY[
         CASE WHEN r.customer_id <> s.customer_id THEN 'customer_id' END,
         CASE WHEN r.metric <> s.metric THEN 'metric' END,
         CASE WHEN r.occurred_at <> s.occurred_at THEN 'occurred_at' END,
         CASE WHEN r.value <> s.value THEN 'value' END,
         CASE WHEN r.properties <> s.properties THEN 'properties' END
       ], NULL) AS differs
FROM unnest(CAST(:line_numbers AS bigint[])) AS suspect (line_number)
JOIN (SELECT *, coalesce(document -> 'properties', '{}') AS properties
      FROM raw_metrics_staging) AS s USING (line_number)
JOIN raw_metrics AS r USING (event_id)
WHERE (r.customer_id, r.metric, r.occurred_at, r.value, r.properties)
      IS DISTINCT FROM (s.customer_id, s.metric, s.occurred_at, s.value, s.properties)
