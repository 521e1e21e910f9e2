"""The README's picture of the asset graph is the one the definitions produce."""

import re

import pytest

from tests.helpers import PROJECT_ROOT
from usage_assets import asset_graph
from usage_assets.definitions import defs

pytestmark = pytest.mark.unit


def test_readme_asset_graph_is_current() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    block = re.search(r"<!-- asset-graph:start -->\n```mermaid\n(.*?)\n```", readme, re.S)
    assert block, "README lost its asset graph block"
    assert block.group(1) == asset_graph.mermaid(defs), "run python -m usage_assets.asset_graph"
