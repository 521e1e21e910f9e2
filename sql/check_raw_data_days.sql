-- Raw rows per UTC day of some raw metrics over [period_start, period_end), zero days included.
SELECT d.day::date AS day,
       (SELECT count(*) FROM raw_metrics
        WHERE metric = ANY(:metrics) AND occurred_at >= d.day AND occurred_at < d.day + interval '1 day'
       ) AS rows
FROM generate_series(:period_start, :period_end - interval '1 day', interval '1 day') AS d(day)
ORDER BY 1
