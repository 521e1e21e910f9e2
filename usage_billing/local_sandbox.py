"""Local mode's billing API: the Metronome sandbox, started on demand like the embedded database.

The sandbox is a program of its own (`python -m metronome_sandbox`, like stripe-mock): the
pipeline runs it and never imports it. Started here it runs in the background, outlives the
command (Dagster's run workers share it), stores its events in the pipeline's database, logs to
`.usage_billing/sandbox.log` and leaves its process id in `.usage_billing/sandbox.pid`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator

import httpx

from usage_billing import db

STARTUP_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.2


class LocalSandboxError(RuntimeError):
    """The local sandbox could not be started or does not accept the dev token."""


def healthy(base_url: str, token: str) -> bool:
    """True when a sandbox answers `/sandbox/health` at `base_url` and accepts `token`."""
    try:
        response = httpx.get(
            f"{base_url}/sandbox/health",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5.0,
        )
    except httpx.HTTPError:
        return False
    if response.status_code in (401, 403):
        raise LocalSandboxError(
            f"the server at {base_url} refuses local mode's dev token: stop it, or set "
            "METRONOME_BASE_URL and METRONOME_BEARER_TOKEN to use it"
        )
    return response.is_success


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    # Several processes (CLI, run workers) may want the sandbox at once: one starts it.
    with (db.home() / "sandbox.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_running(base_url: str, token: str) -> None:
    """Start the sandbox at `base_url` (a loopback address) unless one answers there already."""
    if healthy(base_url, token):
        return
    with _start_lock():
        if healthy(base_url, token):
            return
        address = urllib.parse.urlsplit(base_url)
        log_path = db.home() / "sandbox.log"
        command = [
            sys.executable,
            "-m",
            "metronome_sandbox",
            "--host",
            address.hostname or "127.0.0.1",
            "--port",
            str(address.port or 80),
        ]
        # Through the environment, not the command line that `ps` shows.
        env = {
            **os.environ,
            "METRONOME_BEARER_TOKEN": token,
            "USAGE_DATABASE_URL": db.database_url(),
        }
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this command, like the embedded database
            )
        (db.home() / "sandbox.pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not healthy(base_url, token):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-1500:]
                raise LocalSandboxError(
                    f"the local sandbox did not start on {base_url} (log {log_path}):\n{tail}"
                )
            time.sleep(POLL_SECONDS)  # polling the server we just started until it answers
