"""Monthly partitions: keys `YYYY-MM`, the current month included so it can be kept fresh."""

import dagster as dg

from usage_billing.periods import FIRST_MONTH

monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=FIRST_MONTH, fmt="%Y-%m", end_offset=1, timezone="UTC"
)
