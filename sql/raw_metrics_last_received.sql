SELECT coalesce(max(received_at), now()) FROM raw_metrics
