-- Does the month have raw metrics of these kinds? (index probes on (metric, occurred_at))
SELECT EXISTS (
  SELECT 1 FROM raw_metrics
  WHERE metric = ANY(:metrics) AND occurred_at >= :period_start AND occurred_at < :period_end
)
