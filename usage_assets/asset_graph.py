"""The asset graph as a Mermaid diagram, generated from the Dagster definitions (README picture)."""

from __future__ import annotations

import dagster as dg


def _node(key: dg.AssetKey) -> str:
    return key.to_user_string().replace("/", "__")


def mermaid(defs: dg.Definitions) -> str:
    """`flowchart LR` of every asset, grouped by Dagster group, with its dependency edges."""
    graph = defs.resolve_asset_graph()
    groups: dict[str, list[dg.AssetKey]] = {}
    for key in sorted(graph.get_all_asset_keys()):
        groups.setdefault(graph.get(key).group_name, []).append(key)
    lines = ["flowchart LR"]
    for group, keys in groups.items():
        lines.append(f"  subgraph {group}")
        lines.extend(f'    {_node(k)}["{k.to_user_string()}"]' for k in keys)
        lines.append("  end")
    for key in sorted(graph.get_all_asset_keys()):
        lines.extend(
            f"  {_node(parent)} --> {_node(key)}" for parent in sorted(graph.get(key).parent_keys)
        )
    return "\n".join(lines)


if __name__ == "__main__":
    from usage_assets.definitions import defs

    print(mermaid(defs))
