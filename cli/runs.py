"""Commands that run the pipeline: `materialize`, `dlq`, `ui`, `sandbox`, `demo`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from usage_billing import billing_api, config, db, local_sandbox, periods, reporting
from usage_billing.cli import demo, instance
from usage_billing.cli.common import database, partition, print_json
from usage_billing.cli.materialize import materialize


def cmd_materialize(args: argparse.Namespace) -> int:
    outcome = materialize(partition(args.month), args.select)
    status = "SUCCESS" if outcome.success else "FAILURE"
    print(f"run {outcome.run_id} for {args.month}: {status}")
    for step in outcome.failed_steps:
        print(f"  failed step: {step}")
    return 0 if outcome.success else 1


def cmd_dlq_list(args: argparse.Namespace) -> int:
    letters = reporting.dead_letters(database())
    if args.json:
        print_json(
            [
                {
                    "transaction_id": row.transaction_id,
                    "partition_key": row.partition_key,
                    "billable_metric": row.event_type,
                    "customer_id": row.customer_id,
                    "status_code": row.status_code,
                    "message": row.message,
                    "window_start": row.window_start.isoformat(),
                    "delta": reporting.decimal_text(row.delta),
                    "retryable": row.retryable,
                    "failures": row.failures,
                    "failed_at": row.failed_at.isoformat(),
                }
                for row in letters
            ]
        )
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
    month = partition(args.month) if args.month else None
    api = billing_api.from_environment()
    results = reporting.redrive(database(), api, periods.now(), month)
    for key, stats in results.items():
        print(
            f"{key}: resent {stats.sent}, acknowledged {stats.acknowledged}, "
            f"dead again {stats.dead_lettered}"
        )
    if not results:
        print("nothing to redrive")
    return 1 if any(stats.dead_lettered for stats in results.values()) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    return demo.run(customers=args.customers, seed_value=args.seed)


def cmd_ui(args: argparse.Namespace) -> int:
    instance.prepare()
    settings = config.billing_api_settings()
    if settings.local:  # the daemon's runs find it running (they would start it too)
        local_sandbox.ensure_running(settings.base_url, settings.bearer_token)
    workspace = instance.workspace_file()
    print(f"Dagster UI on http://127.0.0.1:{args.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace)]
    return subprocess.call([*command, "-h", "127.0.0.1", "-p", str(args.port)])


def cmd_sandbox(args: argparse.Namespace) -> int:
    # The sandbox is a program of its own; it stores its events in the pipeline's database.
    env = {**os.environ, "USAGE_DATABASE_URL": db.database_url()}
    command = [sys.executable, "-m", "metronome_sandbox", *args.sandbox_arguments]
    return subprocess.call(command, env=env)


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `usage-billing` parser."""
    run = commands.add_parser("materialize", help="materialize a month's partition via Dagster")
    run.add_argument("--month", required=True)
    run.add_argument("--select", help="Dagster asset selection, e.g. 'key:usage_events'")
    run.set_defaults(run=cmd_materialize)

    dlq = commands.add_parser("dlq", help="dead-letter queue").add_subparsers(
        dest="dlq_command", required=True
    )
    dlq_list = dlq.add_parser("list", help="unresolved dead letters")
    dlq_list.add_argument("--json", action="store_true")
    dlq_list.set_defaults(run=cmd_dlq_list)
    dlq_redrive = dlq.add_parser("redrive", help="re-send dead letters with the same ids")
    dlq_redrive.add_argument("--month")
    dlq_redrive.set_defaults(run=cmd_dlq_redrive)

    sandbox = commands.add_parser(
        "sandbox",
        help="run the Metronome-compatible sandbox (options: usage-billing sandbox --help)",
        add_help=False,
    )
    sandbox.add_argument("sandbox_arguments", nargs=argparse.REMAINDER)
    sandbox.set_defaults(run=cmd_sandbox)

    demo_command = commands.add_parser("demo", help="run the whole pipeline, end to end")
    demo_command.add_argument("--customers", type=int, default=50)
    demo_command.add_argument("--seed", type=int, default=7)
    demo_command.set_defaults(run=cmd_demo)

    ui = commands.add_parser("ui", help="run the Dagster UI (webserver and daemon)")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(run=cmd_ui)
