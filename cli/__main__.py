"""`python -m usage_billing.cli ...`: the same as `usage-billing ...`."""

from usage_billing.cli import entry_point

entry_point()
