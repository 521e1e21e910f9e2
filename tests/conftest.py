"""Real PostgreSQL for every test: each test gets a fresh database on the server below.

Server: `USAGE_TEST_DATABASE_URL` if set, else the local PostgreSQL at 127.0.0.1:5432 (CI has one),
else the embedded PostgreSQL wheel, so the suite also runs on a machine with nothing installed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

from metronome_sandbox.server import running_sandbox
from metronome_sandbox.settings import DEV_TOKEN, SandboxSettings
from tests.pipeline import NOW, Sandbox, fast_api
from usage_billing import db
from usage_billing.resources import BillingApiResource

# CI explores the same examples on every run (reproducible); developers' runs explore new ones.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

LOCAL_SERVER = "postgresql+psycopg://root@127.0.0.1:5432/test"
TIERS = ("unit", "integration", "e2e", "adversarial")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test belongs to exactly one tier (pyproject.toml lists them), so `-m` selects
    whole tiers and nothing slips between them."""
    for item in items:
        tiers = [tier for tier in TIERS if item.get_closest_marker(tier)]
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid}: needs exactly one tier marker, has {tiers}")


def _reachable(url: str) -> bool:
    engine = sa.create_engine(
        db.with_driver(url), poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path) -> Iterator[None]:
    """The CLI exports settings into os.environ for its child processes: undo that per test."""
    saved = dict(os.environ)
    home = tmp_path / "usage_billing_home"
    os.environ["USAGE_BILLING_HOME"] = str(home)
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.pop("DAGSTER_PG_URL", None)
    os.environ.pop("USAGE_BILLING_NOW", None)
    yield
    os.environ.clear()
    os.environ.update(saved)
    _refuse_a_local_sandbox(home / "sandbox.pid")


def _refuse_a_local_sandbox(pid_file: Path) -> None:
    """A test that fell into local mode started the sandbox on 127.0.0.1:8787, which every test
    run on this machine shares: stop it, and fail the test (use the `sandbox` fixture)."""
    if not pid_file.exists():
        return
    with contextlib.suppress(ProcessLookupError, ValueError):
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
    pytest.fail("this test started the local-mode sandbox on 127.0.0.1:8787; use `sandbox`")


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a database on the test server with rights to create databases."""
    configured = os.environ.get("USAGE_TEST_DATABASE_URL")
    if configured:
        return configured
    if _reachable(LOCAL_SERVER):
        return LOCAL_SERVER
    os.environ["USAGE_BILLING_HOME"] = str(tmp_path_factory.mktemp("embedded_server"))
    return db.embedded_url("postgres")


def _fresh_database(admin_url: str) -> Iterator[str]:
    name = f"ub_test_{uuid.uuid4().hex[:12]}"
    db.ensure_database(admin_url, name)
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        admin = sa.create_engine(
            db.with_driver(admin_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def database_url(admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty database for one test, also exported as USAGE_DATABASE_URL."""
    for url in _fresh_database(admin_url):
        monkeypatch.setenv("USAGE_DATABASE_URL", url)
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on a fresh database with the pipeline's schema created."""
    engine = db.create_engine(database_url)
    db.init_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """The pipeline clock, pinned (sandbox fixtures pin theirs to the same instant)."""
    monkeypatch.setenv("USAGE_BILLING_NOW", NOW.isoformat())
    return NOW


@pytest.fixture
def sandbox(database_url: str, engine: sa.Engine, now: dt.datetime) -> Iterator[Sandbox]:
    """A real Metronome sandbox over loopback, storing in the test's database."""
    settings = SandboxSettings(
        port=0, database_url=database_url, now=now, token=DEV_TOKEN, fault_seed=7
    )
    with running_sandbox(settings) as url:
        yield Sandbox(url)


@pytest.fixture
def api(sandbox: Sandbox) -> BillingApiResource:
    return fast_api(sandbox.url)
