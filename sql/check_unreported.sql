-- Truth the ledger has not committed yet, for windows before :before (closed periods): usage
-- events never reported, or changed since their last report.
SELECT coalesce(e.event_type, l.event_type) AS metric,
       coalesce(e.customer_id, l.customer_id) AS customer_id,
       to_char(coalesce(e.window_start, l.window_start) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
       coalesce(e.quantity, 0) - coalesce(l.committed, 0) AS unreported
FROM (SELECT * FROM usage_events WHERE window_start < :before) AS e
FULL JOIN (SELECT * FROM usage_ledger WHERE window_start < :before) AS l
  ON l.event_type = e.event_type AND l.customer_id = e.customer_id
 AND l.window_start = e.window_start AND l.groups = e.groups
WHERE coalesce(e.quantity, 0) <> coalesce(l.committed, 0)
ORDER BY 3, 1, 2
