"""Dagster definitions of the usage billing pipeline."""

import warnings

import dagster as dg

# Dagster 1.13 warns "in beta" about parameters it passes itself: `owners=[]` whenever it copies a
# sensor to bind resources, `include_sources` when it resolves a group selection. We use neither.
for _parameter in ("owners", "include_sources"):
    warnings.filterwarnings("ignore", message=f"Parameter `{_parameter}`", category=dg.BetaWarning)
