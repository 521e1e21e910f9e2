"""The SQL worth a name: the schema, one collector per billable metric, multi-CTE statements.

Installed as `usage_billing.sql`. Short queries live next to the code that runs them; these files
are read once and run through `execute`, with bound parameters only.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import sqlalchemy as sa

SQL_DIR = Path(__file__).parent


@functools.cache
def read(name: str) -> str:
    """The text of `sql/<name>` (e.g. `schema.sql`, `collectors/events_sent.sql`)."""
    return (SQL_DIR / name).read_text()


@functools.cache
def statement(name: str) -> sa.TextClause:
    """`sql/<name>` as a SQLAlchemy text clause, built once."""
    return sa.text(read(name))


def execute(conn: sa.Connection, name: str, /, **params: Any) -> sa.CursorResult[Any]:
    """Run `sql/<name>` on `conn` with bound parameters."""
    return conn.execute(statement(name), params)
