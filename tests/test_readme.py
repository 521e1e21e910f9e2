"""The README's picture of the asset graph is the one the definitions produce."""

import re

from usage_assets.definitions import defs
from usage_billing import asset_graph, instance


def test_readme_asset_graph_is_current() -> None:
    readme = (instance.PROJECT_ROOT / "README.md").read_text()
    block = re.search(r"<!-- asset-graph:start -->\n```mermaid\n(.*?)\n```", readme, re.S)
    assert block, "README lost its asset graph block"
    assert block.group(1) == asset_graph.mermaid(defs), "run python -m usage_billing.asset_graph"
