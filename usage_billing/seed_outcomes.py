"""Seed generators for the outcome-based raw metrics (registered with `seed.generator`)."""
