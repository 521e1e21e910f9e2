"""Every SQL statement of the pipeline lives in this folder; `read` loads one by file name."""

from __future__ import annotations

import functools
from pathlib import Path

SQL_DIR = Path(__file__).parent


@functools.cache
def read(name: str) -> str:
    """The text of `sql/<name>` (e.g. `schema.sql`, `collectors/events_sent.sql`)."""
    return (SQL_DIR / name).read_text()
