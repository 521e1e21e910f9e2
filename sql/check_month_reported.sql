-- Has anything of the month ever been committed to the ledger?
SELECT EXISTS (
  SELECT 1 FROM usage_ledger WHERE window_start >= :period_start AND window_start < :period_end
)
