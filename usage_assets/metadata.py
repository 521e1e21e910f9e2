"""Metadata a finance user reads in the Dagster UI."""


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (what the UI renders for `MetadataValue.md`); a `|` or a line break in a
    cell (customer ids are user data) cannot break it."""

    def cells(values: list[str]) -> str:
        escaped = (v.replace("\\", "\\\\").replace("|", "\\|") for v in values)
        return "| " + " | ".join(" ".join(v.splitlines()) for v in escaped) + " |"

    lines = [cells(header), "|" + "---|" * len(header)]
    lines += [cells(row) for row in rows]
    return "\n".join(lines)
