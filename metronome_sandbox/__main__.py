"""`python -m metronome_sandbox [options]`: the same as `usage-billing sandbox`."""

from __future__ import annotations

import argparse

from metronome_sandbox import cli

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m metronome_sandbox", description=cli.__doc__)
    cli.add_arguments(parser)
    raise SystemExit(cli.run(parser.parse_args()))
