"""The environment every Dagster process of the pipeline shares (CLI, webserver, daemon, runs)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import yaml

from usage_billing import db

INSTANCE_TEMPLATE = Path(__file__).with_name("dagster.yaml")
WORKSPACE = {
    "load_from": [
        {
            "python_module": {
                "module_name": "usage_assets.definitions",
                "location_name": "usage_billing",
            }
        }
    ]
}


def prepare() -> None:
    """Resolve the database (starting the embedded one if needed), create the schema, and export
    `USAGE_DATABASE_URL`, `DAGSTER_PG_URL` and `DAGSTER_HOME` for this process and its children.
    A `DAGSTER_HOME` set by the user is theirs: its dagster.yaml is used as it is."""
    dagster_url = db.dagster_database_url()
    usage_url = db.database_url()
    engine = db.create_engine(usage_url)
    try:
        db.init_schema(engine)
    finally:
        engine.dispose()
    os.environ["USAGE_DATABASE_URL"] = usage_url
    os.environ.setdefault("DAGSTER_PG_URL", dagster_url)
    if not os.environ.get("DAGSTER_HOME"):
        dagster_home = db.home() / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(INSTANCE_TEMPLATE, dagster_home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(dagster_home)


def workspace_file() -> Path:
    """A workspace.yaml in DAGSTER_HOME loading the code location (works from any directory)."""
    path = Path(os.environ["DAGSTER_HOME"]) / "workspace.yaml"
    path.write_text(yaml.safe_dump(WORKSPACE, sort_keys=False))
    return path


def get_instance() -> dg.DagsterInstance:
    """The configured Dagster instance (Postgres storage via dagster-postgres)."""
    prepare()
    return dg.DagsterInstance.get()
