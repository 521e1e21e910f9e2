"""Shared scaffolding for benchmark scripts: a throw-away database and machine facts."""

from __future__ import annotations

import os
import platform
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa

from usage_billing import db

SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
T = TypeVar("T")


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database on the benchmark server with the pipeline schema, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    db.ensure_database(SERVER, name)
    url = sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    try:
        engine = db.create_engine(url)
        db.init_schema(engine)
        engine.dispose()
        yield url
    finally:
        admin = sa.create_engine(db.with_driver(SERVER), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def timed(function: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    """Best wall time of `repeat` runs (the first also warms caches) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result  # type: ignore[return-value]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        models = [line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line]
    cpu = models[0] if models else platform.processor()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB, Python {platform.python_version()}"
    )
