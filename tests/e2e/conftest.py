"""Dagster instances written the way Dagster's own docs show, for plain `dagster dev`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from metronome_sandbox.settings import DEV_TOKEN
from tests.pipeline import Sandbox

# Trust authentication ignores it; a server that checks passwords gets the URL's own.
PLACEHOLDER_PASSWORD = "unused-under-trust-auth"


def postgres_url_storage(database_url: str) -> dict[str, Any]:
    """`postgres_url: postgresql://…`: a plain URL, no driver, as in Dagster's docs."""
    plain = sa.make_url(database_url).set(drivername="postgresql")
    return {"postgres": {"postgres_url": plain.render_as_string(hide_password=False)}}


def postgres_db_storage(database_url: str) -> dict[str, Any]:
    """`postgres_db: {username, password, hostname, db_name, port}`, the password from the
    environment (`DAGSTER_PG_PASSWORD`), as in Dagster's docs."""
    url = sa.make_url(database_url)
    fields = {
        "username": url.username,
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": url.host,
        "db_name": url.database,
        "port": url.port or 5432,
    }
    return {"postgres": {"postgres_db": fields}}


def dagster_home(directory: Path, storage: dict[str, Any]) -> Path:
    """A DAGSTER_HOME whose dagster.yaml has only `storage` (and telemetry off)."""
    directory.mkdir(parents=True, exist_ok=True)
    instance = {"storage": storage, "telemetry": {"enabled": False}}
    (directory / "dagster.yaml").write_text(yaml.safe_dump(instance, sort_keys=False))
    return directory


@pytest.fixture
def billing_api_environment(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The webserver, daemon and run workers reach this test's sandbox (never port 8787)."""
    monkeypatch.setenv("METRONOME_BASE_URL", sandbox.url)
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", DEV_TOKEN)
    return sandbox


def database_password(database_url: str) -> str:
    return sa.make_url(database_url).password or PLACEHOLDER_PASSWORD
