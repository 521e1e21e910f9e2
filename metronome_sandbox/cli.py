"""`python -m metronome_sandbox` (or `usage-billing sandbox`): run the sandbox in the foreground."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from metronome_sandbox.server import serve
from metronome_sandbox.settings import DEFAULT_PORT, DEV_TOKEN, SandboxSettings


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `usage-billing sandbox`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}, 0: any)"
    )
    parser.add_argument(
        "--fault-rate",
        type=_rate,
        default=0.0,
        help="share of ingest requests failing with 500/503",
    )
    parser.add_argument(
        "--lost-ack-rate",
        type=_rate,
        default=0.0,
        help="share of ingest requests stored but answered 500 (lost acknowledgement)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_positive,
        default=None,
        metavar="EV_PER_S",
        help="events per second before 429 (default unlimited)",
    )
    parser.add_argument(
        "--latency-ms", type=_non_negative_int, default=0, metavar="MS", help="delay every answer"
    )
    parser.add_argument("--fault-seed", type=int, default=None, help="seed of the injected faults")
    parser.add_argument(
        "--token",
        default=None,
        help="bearer token to accept (default METRONOME_BEARER_TOKEN, else the dev token)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL for accepted events (default USAGE_DATABASE_URL, else an embedded one)",
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    settings = SandboxSettings(
        host=args.host,
        port=args.port,
        fault_rate=args.fault_rate,
        lost_ack_rate=args.lost_ack_rate,
        rate_limit=args.rate_limit,
        latency_ms=args.latency_ms,
        fault_seed=args.fault_seed,
        database_url=args.database_url,
    )
    if args.token:
        settings.token = args.token
    # Shows the injected faults (logger metronome_sandbox); uvicorn has its own handlers.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    source = "the dev token" if settings.token == DEV_TOKEN else "the configured token"
    print(f"accepting {source} as bearer token", file=sys.stderr)
    if not _loopback(args.host):
        print(
            f"WARNING: binding {args.host}, not loopback: other machines can reach the sandbox "
            "(every endpoint still requires the bearer token)",
            file=sys.stderr,
        )
    serve(settings)
    return 0
