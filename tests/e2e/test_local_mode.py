"""Local mode from nothing: the demo on the embedded PostgreSQL and a sandbox started on demand,
then the commands a user runs next, each as its own process, as a user types them.

Local mode's address is fixed (127.0.0.1:8787), so this module holds a machine-wide lock while it
runs and stops the sandbox and the embedded server it started.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import sent
from usage_billing import periods

pytestmark = pytest.mark.e2e

LOCAL_PORT = 8787
LOCK = Path(tempfile.gettempdir()) / "usage-billing-local-mode.lock"
COMMAND_TIMEOUT_SECONDS = 300
LOCAL_VARIABLES = (
    "USAGE_DATABASE_URL",
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
    "METRONOME_BASE_URL",
    "METRONOME_BEARER_TOKEN",
    "USAGE_BILLING_NOW",
    "USAGE_ALERTS_WEBHOOK_URL",
    "USAGE_PORTAL_SECRET",
)
PORTAL_SECRET = "local-mode-portal-secret-0123456789abcdef"


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _stop(pid_file: Path, sig: signal.Signals) -> None:
    """Signal the process a pid file names and wait until it is gone."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)  # waiting for a process we signalled to exit


class LocalUser:
    """Runs `usage-billing` commands in a fresh directory with nothing configured."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if k not in LOCAL_VARIABLES}
        self.env["USAGE_BILLING_HOME"] = str(home / ".usage_billing")

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "usage_billing.cli", *arguments],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )

    def start(self, *arguments: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "usage_billing.cli", *arguments],
            cwd=self.home,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ok(self, *arguments: str) -> str:
        done = self.run(*arguments)
        assert done.returncode == 0, (arguments, done.stdout[-2000:], done.stderr[-3000:])
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout


@pytest.fixture
def local_user() -> Iterator[LocalUser]:
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one local-mode test on this machine at a time
        assert not _port_in_use(LOCAL_PORT), "something already listens on 127.0.0.1:8787"
        home = Path(tempfile.mkdtemp(prefix="usage-billing-local-"))
        home.chmod(0o755)  # the embedded server runs as its own system user when we are root
        try:
            yield LocalUser(home)
        finally:
            state = home / ".usage_billing"
            _stop(state / "sandbox.pid", signal.SIGTERM)
            _stop(state / "pgdata" / "postmaster.pid", signal.SIGINT)  # a fast shutdown
            shutil.rmtree(home, ignore_errors=True)


def test_after_the_demo_every_command_works_on_the_local_default(
    local_user: LocalUser, tmp_path: Path
) -> None:
    demo = local_user.ok("demo", "--customers", "3")
    assert "All totals agree" in demo
    assert "billing API: http://127.0.0.1:8787" in demo
    assert (local_user.home / ".usage_billing" / "sandbox.pid").exists()

    month = periods.month_of(periods.now())
    assert "SUCCESS" in local_user.ok("materialize", "--month", month)
    usage = json.loads(local_user.ok("usage", "--month", month, "--json"))
    assert usage and {"customer_id", "billable_metric", "value"} == set(usage[0])
    assert json.loads(local_user.ok("dlq", "list", "--json")) == []
    invoices = json.loads(local_user.ok("invoice", "--month", month, "--json"))
    assert {invoice["customer_id"] for invoice in invoices} == {
        "cust_0001",
        "cust_0002",
        "cust_0003",
    }
    assert all(invoice["final"] is False for invoice in invoices)
    assert isinstance(json.loads(local_user.ok("commits", "--json")), list)
    forecasts = json.loads(local_user.ok("forecast", "--month", month, "--json"))
    assert forecasts and {"month_to_date", "projected", "low", "high"} <= set(forecasts[0])
    assert isinstance(json.loads(local_user.ok("spikes", "--month", month, "--json")), list)
    assert "nothing to redrive" in local_user.ok("dlq", "redrive")
    assert local_user.ok("db", "url").startswith("postgresql")

    today = periods.now().replace(microsecond=0).isoformat()
    lines = tmp_path / "late.jsonl"
    lines.write_text(sent("local-late-1", today, 5, customer_id="cust_0001") + "\n")
    assert json.loads(local_user.ok("load", str(lines), "--json"))["loaded"] == 1
    assert "SUCCESS" in local_user.ok("materialize", "--month", month)

    # A sandbox stopped behind the user's back is started again by the next command.
    _stop(local_user.home / ".usage_billing" / "sandbox.pid", signal.SIGTERM)
    assert "SUCCESS" in local_user.ok("materialize", "--month", month)


def test_after_the_demo_a_customer_opens_their_portal_page_from_a_signed_link(
    local_user: LocalUser,
) -> None:
    local_user.ok("demo", "--customers", "2")
    local_user.env["USAGE_PORTAL_SECRET"] = PORTAL_SECRET
    portal = local_user.start("portal", "--port", "0")
    try:
        assert portal.stdout is not None
        first = portal.stdout.readline()
        listening = re.fullmatch(r"Customer portal listening on (http://127\.0\.0\.1:\d+)\n", first)
        assert listening, (first, portal.stderr.read() if portal.poll() is not None else "")
        url = listening[1]
        link = local_user.ok("portal", "link", "--customer", "cust_0001", "--base-url", url)
        page = httpx.get(link.strip(), timeout=60)
        assert page.status_code == 200, page.text[:500]
        assert "cust_0001" in page.text and "cust_0002" not in page.text
        assert (
            httpx.get(link.strip().replace("cust_0001", "cust_0002"), timeout=60).status_code == 403
        )
    finally:
        portal.send_signal(signal.SIGINT)
        _, err = portal.communicate(timeout=30)
    assert portal.returncode == 0, err
