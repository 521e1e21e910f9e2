"""Commands on the data: `db`, `load`, `seed`, `usage`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from usage_billing import db, loader, periods, synthetic
from usage_billing.cli.common import UsageError, database, partition, print_json

# A month's aggregated usage per customer and billable metric.
_MONTH_USAGE = sa.text("""
SELECT customer_id, billable_metric, trim_scale(sum(value))::text AS value
FROM aggregated_usage
WHERE window_start >= :period_start AND window_start < :period_end
GROUP BY customer_id, billable_metric
ORDER BY customer_id, billable_metric
""")


def cmd_db_url(args: argparse.Namespace) -> int:
    print(db.database_url())
    return 0


def cmd_db_init(args: argparse.Namespace) -> int:
    engine = database()
    print(f"schema ready in {engine.url.render_as_string(hide_password=True)}")
    return 0


def _print_load(result: loader.LoadResult, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "loaded": result.loaded,
                "duplicate": result.duplicate,
                "quarantined": result.quarantined,
                "conflicting": result.conflicting,
            }
        )
        return
    print(
        f"loaded {result.loaded} / duplicate {result.duplicate} / "
        f"quarantined {result.quarantined} (conflicting {result.conflicting})"
    )
    for reason, count in sorted(result.reasons.items()):
        print(f"  quarantined: {count} x {reason}")


def cmd_load(args: argparse.Namespace) -> int:
    if args.retry_quarantine:
        _print_load(loader.retry_quarantine(database()), args.json)
        return 0
    if args.file is None:
        raise UsageError("load: give a FILE.jsonl or --retry-quarantine")
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"load: {args.file} is not a readable file")
    result = loader.load_file(database(), path)
    _print_load(result, args.json)
    nothing_readable = result.read > 0 and result.loaded + result.duplicate == 0
    return 1 if nothing_readable else 0


def cmd_seed(args: argparse.Namespace) -> int:
    plan = synthetic.plan(partition(args.month), args.customers, args.seed)
    if args.jsonl:
        count = synthetic.write_jsonl(plan, Path(args.jsonl))
        print(f"wrote {count} lines to {args.jsonl}")
        return 0
    result = synthetic.seed(database(), plan)
    print(f"seeded {args.month}: ", end="")
    _print_load(result, as_json=False)
    return 0


def month_usage(engine: sa.Engine, month: str) -> list[dict[str, Any]]:
    """Aggregated usage of a month: `[{"customer_id", "billable_metric", "value"}]`."""
    start, end = periods.month_bounds(month)
    with engine.connect() as conn:
        rows = conn.execute(_MONTH_USAGE, {"period_start": start, "period_end": end})
        return [dict(row._mapping) for row in rows]


def cmd_usage(args: argparse.Namespace) -> int:
    usage = month_usage(database(), partition(args.month))
    if args.json:
        print_json(usage)
        return 0
    print(f"{'customer_id':<16} {'billable_metric':<34} {'value':>24}")
    for row in usage:
        print(f"{row['customer_id']:<16} {row['billable_metric']:<34} {row['value']:>24}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `usage-billing` parser."""
    database_commands = commands.add_parser("db", help="database URL and schema").add_subparsers(
        dest="db_command", required=True
    )
    url = database_commands.add_parser("url", help="print the SQLAlchemy URL in use")
    url.set_defaults(run=cmd_db_url)
    init = database_commands.add_parser("init", help="create or migrate the schema")
    init.set_defaults(run=cmd_db_init)

    load = commands.add_parser("load", help="bulk-load raw metrics from JSON lines")
    load.add_argument("file", nargs="?")
    load.add_argument("--retry-quarantine", action="store_true", help="re-try quarantined lines")
    load.add_argument("--json", action="store_true", help="print the counts as JSON")
    load.set_defaults(run=cmd_load)

    seeding = commands.add_parser("seed", help="write synthetic raw metrics for a month")
    seeding.add_argument("--month", required=True)
    seeding.add_argument("--customers", type=int, default=50)
    seeding.add_argument("--seed", type=int, default=1)
    seeding.add_argument("--jsonl", help="write a JSON-lines file instead of loading")
    seeding.set_defaults(run=cmd_seed)

    usage = commands.add_parser("usage", help="aggregated usage of a month")
    usage.add_argument("--month", required=True)
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(run=cmd_usage)
