-- Has the partition ever been through reporting?
SELECT EXISTS (SELECT 1 FROM usage_outbox WHERE partition_key = :partition_key)
