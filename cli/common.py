"""What the commands share: the database, month arguments, JSON output."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from usage_billing import db, periods


class UsageError(ValueError):
    """A command-line argument that cannot work (an unknown customer, a missing file)."""


def database() -> sa.Engine:
    """An engine on the configured database (the embedded one started if needed), schema ready."""
    engine = db.create_engine()
    db.init_schema(engine)
    return engine


def partition(month: str) -> str:
    """`month` when it is one of the partitions as of the pipeline clock; MonthError if not."""
    return periods.check_partition(month)


def print_json(value: Any) -> None:
    """Indented JSON on stdout; decimals and dates are already strings by then."""
    print(json.dumps(value, indent=2))
