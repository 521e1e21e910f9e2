"""Dagster ConfigurableResources: the warehouse (SQLAlchemy), the billing API client, alerts."""

from resources.warehouse import WarehouseResource

__all__ = ["WarehouseResource"]
