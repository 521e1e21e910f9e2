"""Assets by stage: raw metrics, aggregated usage per collector, usage events, reporting."""
