"""`usage-billing`: the command line of the pipeline.

Installed as `usage_billing.cli`. Every command checks the configuration first; a setting or an
argument that cannot work is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from usage_billing import config, db, local_sandbox, periods
from usage_billing.cli import billing, data, insights, portal, runs
from usage_billing.cli.common import UsageError


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


EXPECTED_ERRORS = (
    config.ConfigurationError,
    periods.MonthError,
    db.DatabaseUnavailableError,
    local_sandbox.LocalSandboxError,
    UsageError,
)


def build_parser() -> Parser:
    parser = Parser(prog="usage-billing", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (data, runs, billing, insights, portal):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config.check()
        return args.run(args)
    except EXPECTED_ERRORS as error:
        print(f"usage-billing: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`usage-billing dlq list | head`): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def entry_point() -> None:
    sys.exit(main())
