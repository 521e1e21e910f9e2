"""End-to-end tests: the real Dagster webserver and daemon as child processes."""
