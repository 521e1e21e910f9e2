-- Raw metrics received after :after, by the month they occurred in (the partition they change).
SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
       count(*) AS rows,
       max(received_at) AS last_received
FROM raw_metrics
WHERE received_at > :after
GROUP BY 1
ORDER BY 1
