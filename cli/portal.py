"""`usage-billing portal`: serve the customer portal, and print signed links to it."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import sys

from usage_billing import config, periods
from usage_billing.cli.billing import unknown_customer
from usage_billing.cli.common import UsageError, database
from usage_billing.portal import links

DEFAULT_PORT = 8790
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_portal(args: argparse.Namespace) -> int:
    secret = config.portal_secret()  # before anything starts: no key, no portal
    from usage_billing.portal import app, server  # the web stack only when serving

    engine = database()
    try:
        sock = server.bind(args.host, args.port)
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    if not _loopback(args.host):
        print(
            f"WARNING: binding {args.host}, not loopback: anyone who can reach it may try links",
            file=sys.stderr,
        )
    # The portal's access log (method, path, status: never a query string) on stderr.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    print(f"Customer portal listening on {server.address(sock)}", flush=True)
    print("Links: usage-billing portal link --customer ID", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C after a graceful shutdown: normal
        server.serve(app.create_app(engine, secret), sock)
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    secret = config.portal_secret()
    try:
        lifetime = links.lifetime(args.expires_in)
    except ValueError as error:
        raise UsageError(f"--expires-in {error}") from None
    customer = args.customer
    if not 0 < len(customer) <= links.MAX_CUSTOMER_ID:
        raise UsageError(f"--customer must have 1 to {links.MAX_CUSTOMER_ID} characters")
    with database().connect() as conn:
        if unknown_customer(conn, customer):
            raise UsageError(f"unknown customer {customer!r}: no usage, registration or contract")
    config.check_http_url("--base-url", args.base_url)
    print(links.link(args.base_url, secret, customer, periods.now() + lifetime))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `usage-billing` parser."""
    portal = commands.add_parser(
        "portal",
        help="serve the customer portal (USAGE_PORTAL_SECRET signs its links); "
        "`portal link --customer ID` prints a link",
    )
    portal.add_argument("--host", default="127.0.0.1")
    portal.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    portal.set_defaults(run=cmd_portal)
    portal_commands = portal.add_subparsers(dest="portal_command")
    link = portal_commands.add_parser("link", help="print a signed link to a customer's page")
    link.add_argument("--customer", required=True)
    link.add_argument(
        "--expires-in",
        default="30d",
        help="how long the link works: 30d (default), 12h, 90m, 3600s; at most 366d",
    )
    link.add_argument("--base-url", default=DEFAULT_URL, help=f"the portal's URL ({DEFAULT_URL})")
    link.set_defaults(run=cmd_link)
