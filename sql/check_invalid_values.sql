-- Usage that must not be sent: negative quantities, and customers the registry does not know
-- (checked only when the registry has customers).
SELECT event_type AS metric, customer_id,
       to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, quantity,
       CASE WHEN quantity < 0 THEN 'negative usage' ELSE 'unknown customer' END AS problem
FROM usage_events AS e
WHERE quantity < 0
   OR (EXISTS (SELECT 1 FROM customers)
       AND NOT EXISTS (SELECT 1 FROM customers AS c WHERE c.customer_id = e.customer_id))
ORDER BY window_start, event_type, customer_id
