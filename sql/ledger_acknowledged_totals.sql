-- What the ledger says the billing API acknowledged, per customer and metric, over all windows.
SELECT customer_id, event_type AS metric, sum(acknowledged) AS acknowledged
FROM usage_ledger
GROUP BY customer_id, event_type
HAVING sum(acknowledged) <> 0
