"""Dagster definitions of the usage billing pipeline."""
