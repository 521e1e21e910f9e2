"""`usage-billing`: the command line of the pipeline (DESIGN.md §3)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

import sql
from resources import billing_api
from usage_billing import clock, db, instance, loader, reporting, seed
from usage_billing.materialize import materialize


def _engine() -> sa.Engine:
    instance.prepare()
    return db.create_engine()


def cmd_db_url(args: argparse.Namespace) -> int:
    print(db.database_url())
    return 0


def cmd_db_init(args: argparse.Namespace) -> int:
    engine = _engine()
    print(f"schema ready in {engine.url.render_as_string(hide_password=True)}")
    return 0


def _print_load(result: loader.LoadResult) -> None:
    print(
        f"loaded {result.loaded} / duplicate {result.duplicate} / quarantined {result.quarantined}"
    )
    for reason, count in sorted(result.reasons.items()):
        print(f"  quarantined: {count} x {reason} ...")


def cmd_load(args: argparse.Namespace) -> int:
    engine = _engine()
    if args.retry_quarantine:
        result = loader.retry_quarantine(engine)
        _print_load(result)
        return 0
    if args.file is None:
        print("usage-billing load: give a FILE.jsonl or --retry-quarantine", file=sys.stderr)
        return 2
    try:
        result = loader.load_file(engine, Path(args.file))
    except (OSError, UnicodeDecodeError) as error:
        print(f"cannot read {args.file}: {error}", file=sys.stderr)
        return 1
    _print_load(result)
    nothing_readable = result.read > 0 and result.loaded + result.duplicate == 0
    return 1 if nothing_readable else 0


def cmd_seed(args: argparse.Namespace) -> int:
    plan = seed.plan(args.month, args.customers, args.seed)
    if args.jsonl:
        count = seed.write_jsonl(plan, Path(args.jsonl))
        print(f"wrote {count} lines to {args.jsonl}")
        return 0
    result = seed.seed(_engine(), plan)
    print(f"seeded {args.month}: ", end="")
    _print_load(result)
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    outcome = materialize(args.month, args.select)
    status = "SUCCESS" if outcome.success else "FAILURE"
    print(f"run {outcome.run_id} for {args.month}: {status}")
    for step in outcome.failed_steps:
        print(f"  failed step: {step}")
    return 0 if outcome.success else 1


def month_usage(engine: sa.Engine, month: str) -> list[dict[str, str]]:
    start, end = seed.month_bounds(month)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(sql.read("usage_month.sql")), {"period_start": start, "period_end": end}
        )
        return [dict(row._mapping) for row in rows]


def cmd_usage(args: argparse.Namespace) -> int:
    usage = month_usage(_engine(), args.month)
    if args.json:
        print(json.dumps(usage, indent=2))
        return 0
    print(f"{'customer_id':<16} {'billable_metric':<34} {'value':>24}")
    for row in usage:
        print(f"{row['customer_id']:<16} {row['billable_metric']:<34} {row['value']:>24}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from metronome_sandbox import cli as sandbox_cli

    instance.prepare()
    return sandbox_cli.run(args)


def cmd_dlq_list(args: argparse.Namespace) -> int:
    letters = reporting.dead_letters(_engine())
    if args.json:
        rows = [{key: str(value) for key, value in row._mapping.items()} for row in letters]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{len(letters)} unresolved dead letters")
    for row in letters:
        print(
            f"{row.partition_key} {row.transaction_id} {row.event_type} {row.customer_id} "
            f"{row.window_start:%Y-%m-%d} delta={reporting.decimal_text(row.delta)} "
            f"status={row.status_code} failures={row.failures}: {row.message}"
        )
    return 0


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    engine = _engine()
    results = reporting.redrive(engine, billing_api.from_environment(), clock.now(), args.month)
    for month, stats in results.items():
        print(
            f"{month}: resent {stats.sent}, acknowledged {stats.acknowledged}, "
            f"dead again {stats.dead_lettered}"
        )
    if not results:
        print("nothing to redrive")
    return 1 if any(stats.dead_lettered for stats in results.values()) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from usage_billing import demo

    return demo.run(customers=args.customers, seed_value=args.seed)


def cmd_ui(args: argparse.Namespace) -> int:
    instance.prepare()
    workspace = instance.PROJECT_ROOT / "workspace.yaml"
    print(f"Dagster UI on http://127.0.0.1:{args.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    command = ["dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(args.port)]
    return subprocess.call(command, cwd=instance.PROJECT_ROOT)


def _month(text: str) -> str:
    try:
        seed.month_bounds(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month like 2025-01") from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usage-billing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    database = commands.add_parser("db", help="database URL and schema").add_subparsers(
        dest="db_command", required=True
    )
    database.add_parser("url", help="print the SQLAlchemy URL in use").set_defaults(run=cmd_db_url)
    database.add_parser("init", help="create or migrate the schema").set_defaults(run=cmd_db_init)

    load = commands.add_parser("load", help="bulk-load raw metrics from JSON lines")
    load.add_argument("file", nargs="?")
    load.add_argument("--retry-quarantine", action="store_true", help="re-try quarantined lines")
    load.set_defaults(run=cmd_load)

    seeding = commands.add_parser("seed", help="write synthetic raw metrics for a month")
    seeding.add_argument("--month", type=_month, required=True)
    seeding.add_argument("--customers", type=int, default=50)
    seeding.add_argument("--seed", type=int, default=1)
    seeding.add_argument("--jsonl", help="write a JSON-lines file instead of loading")
    seeding.set_defaults(run=cmd_seed)

    run = commands.add_parser("materialize", help="materialize a month's partition via Dagster")
    run.add_argument("--month", type=_month, required=True)
    run.add_argument("--select", help="Dagster asset selection, e.g. 'key:usage_events'")
    run.set_defaults(run=cmd_materialize)

    usage = commands.add_parser("usage", help="aggregated usage of a month")
    usage.add_argument("--month", type=_month, required=True)
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(run=cmd_usage)

    sandbox = commands.add_parser("sandbox", help="run the Metronome-compatible sandbox")
    try:  # TEMPORARY until the sandbox lands
        from metronome_sandbox import cli as sandbox_cli

        sandbox_cli.add_arguments(sandbox)
    except ImportError:
        pass
    sandbox.set_defaults(run=cmd_sandbox)

    dlq = commands.add_parser("dlq", help="dead-letter queue").add_subparsers(
        dest="dlq_command", required=True
    )
    dlq_list = dlq.add_parser("list", help="unresolved dead letters")
    dlq_list.add_argument("--json", action="store_true")
    dlq_list.set_defaults(run=cmd_dlq_list)
    dlq_redrive = dlq.add_parser("redrive", help="re-send dead letters with the same ids")
    dlq_redrive.add_argument("--month", type=_month)
    dlq_redrive.set_defaults(run=cmd_dlq_redrive)

    demo = commands.add_parser("demo", help="run the whole pipeline on the embedded default")
    demo.add_argument("--customers", type=int, default=50)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(run=cmd_demo)

    ui = commands.add_parser("ui", help="run the Dagster UI (webserver and daemon)")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(run=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except db.DatabaseUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
