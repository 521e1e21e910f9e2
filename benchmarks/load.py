"""Benchmark: the loader against the cost of moving the same bytes into PostgreSQL.

    python -m benchmarks.load [--customers 300] [--month 2026-11] [--bad-every 100]

Writes a JSON-lines file of the seed generator's raw metrics for N customers and one month (all
seven metrics' raw events, in the generators' order), with every k-th line replaced by a bad one
(invalid JSON, invalid UTF-8, a date two days ahead, a NUL in an id, a 300-character event id,
in turn). Then, each on a fresh database of the benchmark server (dropped afterwards):
  floor    `COPY` of the file's lines, unparsed, into a one-column table: the bytes alone;
  parse    `json.loads` of every line in this process: the parsing alone, no database;
  loader   `usage_billing.loader.load_file`: decode, validate, store, quarantine;
  replay   the same file loaded again into the loaded database: every line a duplicate.
Prints lines/s of each and the loader's ratio to the floor and to floor + parse.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from benchmarks._common import machine, peak_rss_mib, scratch_database
from usage_billing import db, loader, periods, synthetic


def _line(n: int, **fields: object) -> bytes:
    """A complete events_sent line but for `fields`."""
    document = {
        "event_id": f"bad-{n}",
        "customer_id": "cust_0001",
        "metric": "events_sent",
        "occurred_at": (periods.now() - dt.timedelta(days=1)).isoformat(),
        "value": 1,
        "properties": {"environment_type": "PRODUCTION", "is_duplicate": False},
        **fields,
    }
    return json.dumps(document).encode()


BAD_LINES = (  # each bad for one reason only
    lambda n: _line(n)[:-20],  # cut short: invalid JSON
    lambda n: _line(n).replace(b"cust_0001", b"cust_\xff\xfe"),  # invalid UTF-8
    lambda n: _line(n, occurred_at=(periods.now() + dt.timedelta(days=2)).isoformat()),
    lambda n: _line(n, customer_id="cust\u0000"),  # a NUL in an id
    lambda n: _line(n, event_id="x" * 300 + str(n)),  # longer than 256 characters
)


def write_file(path: Path, month: str, customers: int, bad_every: int) -> tuple[int, int]:
    """The benchmark's input; (lines, bad lines)."""
    documents = synthetic.documents(synthetic.plan(month, customers, seed=1))
    lines = bad = 0
    with path.open("wb") as out:
        for n, document in enumerate(documents, start=1):
            if bad_every and n % bad_every == 0:
                out.write(BAD_LINES[bad % len(BAD_LINES)](n) + b"\n")
                bad += 1
            else:
                out.write(json.dumps(document).encode() + b"\n")
            lines = n
    return lines, bad


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        yield from stream


def floor_seconds(url: str, path: Path) -> float:
    """COPY the lines, unparsed, into a one-column table."""
    engine = db.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE floor_lines (line bytea)")
        started = time.perf_counter()
        with engine.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()
            with cursor.copy("COPY floor_lines (line) FROM STDIN") as copy:
                for line in _lines(path):
                    copy.write_row((line,))
        return time.perf_counter() - started
    finally:
        engine.dispose()


def parse_seconds(path: Path) -> float:
    started = time.perf_counter()
    for line in _lines(path):
        with contextlib.suppress(ValueError):
            json.loads(line)
    return time.perf_counter() - started


def load_seconds(url: str, path: Path) -> tuple[float, loader.LoadResult, float, loader.LoadResult]:
    """(first load, its result, replay, its result)."""
    engine = db.create_engine(url)
    try:
        started = time.perf_counter()
        first = loader.load_file(engine, path)
        middle = time.perf_counter()
        replay = loader.load_file(engine, path)
        return middle - started, first, time.perf_counter() - middle, replay
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--month", default=periods.previous_month(periods.now()))
    parser.add_argument("--bad-every", type=int, default=100, help="0: no bad lines")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "raw.jsonl"
        lines, bad = write_file(path, args.month, args.customers, args.bad_every)
        size_mib = path.stat().st_size / 2**20
        print(f"{lines:,} lines ({bad:,} bad), {size_mib:.0f} MiB, month {args.month}")
        with scratch_database() as url:
            floor = floor_seconds(url, path)
        parse = parse_seconds(path)
        with scratch_database() as url:
            load, first, replay, again = load_seconds(url, path)
            with sa.create_engine(db.with_driver(url)).connect() as conn:
                stored = conn.exec_driver_sql("SELECT count(*) FROM raw_metrics").scalar_one()
    print(f"{'':8} {'seconds':>8} {'lines/s':>9}")
    for name, seconds in (("floor", floor), ("parse", parse), ("loader", load), ("replay", replay)):
        print(f"{name:8} {seconds:8.2f} {lines / seconds:9,.0f}")
    print(
        f"loader: {first.loaded:,} stored ({stored:,} rows), {first.duplicate:,} duplicates, "
        f"{first.quarantined:,} quarantined "
        f"{dict(sorted(first.reasons.items()))}; replay: {again.duplicate:,} duplicates, "
        f"{again.loaded} stored"
    )
    both = floor + parse
    print(f"loader / floor {load / floor:.2f}x, loader / (floor + parse) {load / both:.2f}x")
    print(f"peak RSS of this process: {peak_rss_mib():.0f} MiB")
    good_lost = lines - bad - first.duplicate - stored
    assert good_lost == 0 and first.loaded == stored and first.quarantined == bad, "lines lost"


if __name__ == "__main__":
    main()
