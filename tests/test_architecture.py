"""The shape of the project: imports point one way, the sandbox stands alone, installed names are
the project's own."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

# Folder -> the import names it provides (the setuptools package-dir mapping in pyproject.toml).
LAYERS = {
    "sql": "usage_billing.sql",
    "resources": "usage_billing.resources",
    "cli": "usage_billing.cli",
    "portal": "usage_billing.portal",
    "usage_assets": "usage_assets",
    "metronome_sandbox": "metronome_sandbox",
    "usage_billing": "usage_billing",  # the Dagster-free core: everything else under the name
}
ALLOWED = {
    "sql": set(),
    "usage_billing": {"sql"},
    "resources": {"usage_billing", "sql"},
    "usage_assets": {"resources", "usage_billing", "sql"},
    "portal": {"usage_billing", "sql"},
    "cli": {"usage_assets", "resources", "usage_billing", "sql", "portal"},
    "metronome_sandbox": set(),
}


def layer_of(module: str) -> str | None:
    """The folder a module name belongs to, None for third-party and standard modules."""
    for folder, name in LAYERS.items():
        if module == name or module.startswith(name + "."):
            return folder
    return None


def imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions (lazy imports too)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def folder_imports() -> dict[str, dict[str, set[str]]]:
    """folder -> imported folder -> files that import it."""
    edges: dict[str, dict[str, set[str]]] = {folder: {} for folder in LAYERS}
    for folder in LAYERS:
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            for module in imports(path):
                target = layer_of(module)
                if target and target != folder:
                    edges[folder].setdefault(target, set()).add(str(path.relative_to(PROJECT_ROOT)))
    return edges


@pytest.mark.unit
def test_imports_between_folders_point_one_way() -> None:
    wrong = {
        (folder, target, file)
        for folder, targets in folder_imports().items()
        for target, files in targets.items()
        if target not in ALLOWED[folder]
        for file in files
    }
    assert not wrong, sorted(wrong)


@pytest.mark.unit
def test_the_core_and_the_sandbox_know_nothing_of_dagster_or_each_other() -> None:
    for folder in ("usage_billing", "sql", "metronome_sandbox", "portal"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            dagster = {
                m for m in imports(path) if m.split(".")[0] in ("dagster", "dagster_graphql")
            }
            assert not dagster, (path, dagster)


@pytest.mark.integration
def test_the_wheel_holds_only_the_projects_own_names_and_works_from_anywhere(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"  # a copy of the checkout: building leaves build/ behind
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, source / name, follow_symlinks=False)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names if not name.endswith(".dist-info/RECORD")}
    packages = {name for name in top_level if not name.endswith(".dist-info")}
    assert packages == {"usage_billing", "usage_assets", "metronome_sandbox"}
    for data in ("usage_billing/sql/collectors/events_sent.sql", "usage_billing/cli/dagster.yaml"):
        assert data in names
    assert {"usage_billing/rate_card.yaml", "usage_billing/contracts.yaml"} <= set(names)
    assert "metronome_sandbox/sql/ingest.sql" in names
    assert {
        "usage_billing/portal/templates/month.html",
        "usage_billing/portal/static/portal.css",
    } <= set(names)

    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import usage_assets.definitions as d, usage_billing.cli as c, usage_billing.sql as s;"
            "print(d.__file__); print(s.read('schema.sql')[:2])",
        ],
        cwd=elsewhere,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.startswith(str(target / "usage_assets"))
