"""The SQL store holding raw metrics and the pipeline's own tables."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import sqlalchemy as sa

from usage_billing import db


@functools.cache
def _engine(url: str) -> sa.Engine:
    # One engine per process and URL: Dagster builds resources per step.
    return db.create_engine(url)


class WarehouseResource(dg.ConfigurableResource):
    """PostgreSQL through SQLAlchemy Core.

    `database_url` comes from `USAGE_DATABASE_URL` (as a `dg.EnvVar`, so a password in it never
    reaches run config or the UI); when unset, the embedded PostgreSQL under `.usage_billing/`.
    """

    database_url: str | None = None

    @property
    def engine(self) -> sa.Engine:
        return _engine(self.database_url or db.database_url())

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn
