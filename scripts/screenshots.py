"""Save README screenshots of the Dagster UI: the asset graph, a partition backfill, a failed check.

    python scripts/screenshots.py [--out docs/images] [--customers 12] [--server-url URL]

Everything happens in a scratch environment that is removed afterwards: a temporary
USAGE_BILLING_HOME with its own DAGSTER_HOME, an embedded PostgreSQL in it (or, with --server-url,
a scratch database created on that server and dropped at the end) and a Metronome sandbox on a free
port. The script seeds the previous and the current month, starts `dagster dev` (webserver and
daemon), launches a two-month backfill through GraphQL as the UI does and waits for it, then makes
one usage event of the previous month negative (as a collector bug would) and executes the blocking
`invalid_values` check as the Checks tab's "Execute" button does: it fails. Headless Chromium
(Debian's `chromium` package) takes the pictures, driven over the DevTools protocol on a pipe, so
each page is captured once its content is there, not after a fixed delay.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # for scripts.dagster_ui, shared with the e2e test

import sqlalchemy as sa  # noqa: E402

from metronome_sandbox.server import running_sandbox  # noqa: E402
from metronome_sandbox.settings import SandboxSettings  # noqa: E402
from scripts import chromium  # noqa: E402
from scripts.chromium import HEIGHT, WIDTH, Page, chromium_page  # noqa: E402
from scripts.dagster_ui import DagsterUi, running_dagster_dev  # noqa: E402
from usage_billing import db, periods, synthetic  # noqa: E402
from usage_billing.cli import instance  # noqa: E402
from usage_billing.cli.demo import demo_months  # noqa: E402

GRAPH_HEIGHT = 1300
BACKFILL_TIMEOUT_SECONDS = 600.0
RUN_TIMEOUT_SECONDS = 300.0
SCRATCH_VARIABLES = (
    "USAGE_DATABASE_URL",
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
    "USAGE_BILLING_NOW",
    "METRONOME_BASE_URL",
    "USAGE_ALERTS_WEBHOOK_URL",
)
GROUPS = ("raw", "aggregated_usage", "reporting", "billing", "billing_api", "insights")
GRAPH_WIDTH = 2600  # raw metrics to insights: nine columns of assets

SET_NUX_SEEN = "mutation SetNuxSeen { setNuxSeen }"


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new database on `server_url`, dropped afterwards."""
    name = f"ub_screenshots_{uuid.uuid4().hex[:10]}"
    db.ensure_database(server_url, name)
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = sa.create_engine(
            db.with_driver(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def stop_embedded_server(home: Path) -> None:
    """Stop the embedded PostgreSQL this script started under `home` (it outlives processes)."""
    pid_file = home / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


@contextlib.contextmanager
def scratch_environment(server_url: str | None) -> Iterator[Path]:
    """A temporary USAGE_BILLING_HOME (embedded PostgreSQL and DAGSTER_HOME inside) or a scratch
    database on `server_url`; the caller's environment is restored afterwards."""
    saved = dict(os.environ)
    home = Path(tempfile.mkdtemp(prefix="usage-billing-screenshots-"))
    home.chmod(0o755)  # the embedded server runs as its own system user when we are root
    os.environ["USAGE_BILLING_HOME"] = str(home)
    for name in SCRATCH_VARIABLES:
        os.environ.pop(name, None)
    try:
        with contextlib.ExitStack() as stack:
            if server_url:
                os.environ["USAGE_DATABASE_URL"] = stack.enter_context(scratch_database(server_url))
            instance.prepare()
            yield home
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if not server_url:
            stop_embedded_server(home)
        shutil.rmtree(home, ignore_errors=True)


def seed_months(engine: sa.Engine, months: Sequence[str], customers: int) -> None:
    """Deterministic raw metrics of every product for each month (up to now)."""
    for month in months:
        result = synthetic.seed(engine, synthetic.plan(month, customers, 7))
        print(f"seeded {month}: {result.loaded} raw rows")


def run_backfill(ui: DagsterUi, months: Sequence[str]) -> str:
    """The two-month backfill of every partitioned asset, launched as the UI launches it."""
    assets = ui.partitioned_materializable_assets()
    backfill_id = ui.launch_backfill(months, assets, f"Monthly usage {months[0]} to {months[-1]}")
    backfill = ui.wait_for_backfill(backfill_id, BACKFILL_TIMEOUT_SECONDS)
    print(f"backfill {backfill_id}: {backfill.status}")
    if backfill.status != "COMPLETED_SUCCESS":
        raise RuntimeError(f"backfill {backfill_id} ended {backfill.status}: {backfill.error}")
    return backfill_id


NEGATE_ONE_EVENT = """
UPDATE usage_events
SET quantity = -quantity,
    properties = jsonb_set(properties, ARRAY[event_type], to_jsonb((-quantity)::text))
WHERE ctid = (
  SELECT ctid FROM usage_events
  WHERE window_start >= :start AND window_start < :end AND quantity > 0
  ORDER BY window_start, event_type, customer_id LIMIT 1)
RETURNING event_type, customer_id, window_start, quantity
"""


def negate_one_usage_event(engine: sa.Engine, month: str) -> sa.Row[Any]:
    """Turn one usage event of `month` negative, as a collector bug would."""
    start, end = periods.month_bounds(month)
    with engine.begin() as conn:
        return conn.execute(sa.text(NEGATE_ONE_EVENT), {"start": start, "end": end}).one()


def fail_invalid_values(ui: DagsterUi, engine: sa.Engine, month: str) -> None:
    """Negative usage in `usage_events`, then the `invalid_values` check executed from the UI's
    Checks tab: it fails (and, being blocking, would stop reporting of that month)."""
    row = negate_one_usage_event(engine, month)
    print(
        f"negative usage: {row.event_type} {row.customer_id} {row.window_start:%Y-%m-%d} "
        f"{row.quantity}"
    )
    run_id = ui.launch_asset_check(["usage_events"], "invalid_values")
    print(f"check run {run_id}: {ui.wait_for_run(run_id, RUN_TIMEOUT_SECONDS)}")


def lineage_url(ui: DagsterUi) -> str:
    """The global asset lineage with every group expanded (`global@global:<group>` ids)."""
    expanded = ",".join(f"global@global:{group}" for group in GROUPS)
    return f"{ui.url}/asset-groups?{urllib.parse.urlencode({'expanded': expanded})}"


def button(text: str) -> str:
    """JS: the button whose label contains `text`."""
    return (
        "Array.from(document.querySelectorAll('button'))"
        f".find(b => b.innerText.includes({json.dumps(text)}))"
    )


def clickable(text: str) -> str:
    """JS: the innermost element whose whole text is `text`."""
    return (
        "Array.from(document.querySelectorAll('body *'))"
        f".find(e => e.childElementCount === 0 && e.textContent.trim() === {json.dumps(text)})"
    )


def icon_button(icon: str) -> str:
    """JS: the button showing the icon named `icon` (Dagster icons carry aria-label)."""
    return f"document.querySelector('[aria-label={json.dumps(icon)}]').closest('button')"


# Where the graph is and where its viewport's middle is: the pan that centers the graph, and a
# blank spot of the viewport (top right, under the toolbar) to drag from.
GRAPH_PAN = """(() => {
  const graph = document.querySelector('svg[class*="AssetGraphExplorer_svgContainer"]');
  const boxes = Array.from(graph.querySelectorAll('foreignObject'), (e) =>
    e.getBoundingClientRect());
  const edge = (side, pick) => pick(...boxes.map((b) => b[side]));
  const left = edge('left', Math.min), right = edge('right', Math.max);
  const top = edge('top', Math.min), bottom = edge('bottom', Math.max);
  const v = graph.parentElement.parentElement.getBoundingClientRect();
  return {start: [v.right - 120, v.top + 150],
          by: [v.x + v.width / 2 - (left + right) / 2, v.y + v.height / 2 - (top + bottom) / 2]};
})()"""


def shoot_asset_graph(page: Page, ui: DagsterUi, path: Path) -> None:
    """Global asset lineage: groups expanded, side panels hidden, zoomed in to node details
    (status, checks, partitions), the graph centered."""
    page.resize(GRAPH_WIDTH, GRAPH_HEIGHT)  # seven collectors stacked, nine columns
    page.open(lineage_url(ui), ["reported_usage", "usage_events", "events_sent", "invoice_totals"])
    page.click(button("Hide navigation"))
    page.click(icon_button("panel_show_right"))  # the asset tree beside the graph
    for _ in range(3):  # zoom in until the nodes show their details
        page.click(icon_button("zoom_in"))
        if page.evaluate("document.body.innerText.includes('Partitions')"):
            break
    page.settle(["Asset checks", "Partitions"], what="the detailed asset graph")
    pan = page.evaluate(GRAPH_PAN)
    page.drag(pan["start"], pan["by"])
    page.screenshot(path)
    page.resize(WIDTH, HEIGHT)


def shoot_failed_check(page: Page, ui: DagsterUi, path: Path) -> None:
    """The Checks tab of usage_events with the failed check's problems opened."""
    page.open(
        f"{ui.url}/assets/usage_events?view=checks&checkDetail=invalid_values",
        ["invalid_values", "Failed", "invalid_count"],
    )
    page.click(clickable("[Show JSON]"))
    page.settle(["negative usage"], what="the failed check's metadata")
    page.screenshot(path)


def take_screenshots(ui: DagsterUi, backfill_id: str, out: Path, scratch: Path) -> None:
    ui.graphql(SET_NUX_SEEN)  # the "Join the Dagster community" dialog, as if dismissed
    out.mkdir(parents=True, exist_ok=True)
    with chromium_page(scratch) as page:
        shoot_asset_graph(page, ui, out / "asset-graph.png")
        page.open(f"{ui.url}/runs/b/{backfill_id}", ["Partition selection", "reported_usage"])
        page.screenshot(out / "backfill.png")
        shoot_failed_check(page, ui, out / "failed-check.png")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "images")
    parser.add_argument("--customers", type=int, default=12)
    parser.add_argument(
        "--server-url",
        help="a PostgreSQL URL allowed to create databases; default: an embedded PostgreSQL",
    )
    return parser.parse_args(argv)


def run(scratch: Path, out: Path, customers: int) -> None:
    """Seed, start the sandbox and the UI, backfill, fail the check, take the screenshots."""
    engine = db.create_engine()
    try:
        months = demo_months(periods.now())
        seed_months(engine, months, customers)
        with running_sandbox(SandboxSettings(port=0, database_url=db.database_url())) as api:
            os.environ["METRONOME_BASE_URL"] = api
            with running_dagster_dev(os.environ, scratch / "dagster-dev.log") as ui:
                backfill_id = run_backfill(ui, months)
                fail_invalid_values(ui, engine, months[0])
                take_screenshots(ui, backfill_id, out, scratch)
    finally:
        engine.dispose()


def print_log_tails(scratch: Path) -> None:
    """The ends of the UI's and the browser's logs, to see why a run failed."""
    for name in ("dagster-dev.log", "chromium.log"):
        log = scratch / name
        if log.exists():
            print(f"--- {name} (tail) ---", file=sys.stderr)
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if reason := chromium.missing():
        print(reason, file=sys.stderr)
        return 2
    with scratch_environment(args.server_url) as scratch:
        try:
            run(scratch, args.out.resolve(), args.customers)
        except BaseException:
            print_log_tails(scratch)  # the scratch directory and its logs are removed next
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
