"""Dagster resources: configuration with described fields, and a factory for the plain client.

Installed as `usage_billing.resources`. The clients themselves (SQLAlchemy engine, billing API
client, webhook notifier) live in the Dagster-free core and know nothing of Dagster.
"""

from usage_billing.resources.alerts import AlertsResource
from usage_billing.resources.billing_api import BillingApiResource
from usage_billing.resources.warehouse import WarehouseResource

__all__ = ["AlertsResource", "BillingApiResource", "WarehouseResource"]
