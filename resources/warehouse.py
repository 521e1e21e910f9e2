"""The PostgreSQL that holds raw metrics and the pipeline's own tables."""

from __future__ import annotations

import functools

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from usage_billing import db


@functools.cache
def _engine(url: str) -> sa.Engine:
    # One engine (and pool) per process and URL: Dagster builds resources once per step.
    return db.create_engine(url)


class WarehouseResource(dg.ConfigurableResource):
    """PostgreSQL through SQLAlchemy Core."""

    database_url: str | None = Field(
        default=None,
        repr=False,
        description="SQLAlchemy URL (`USAGE_DATABASE_URL`, bound as an EnvVar so a password in it "
        "never reaches run config or the UI); unset: the embedded PostgreSQL in .usage_billing/.",
    )

    def get_engine(self) -> sa.Engine:
        """The process-wide engine for this database (started first if it is the embedded one)."""
        return _engine(self.database_url or db.database_url())
