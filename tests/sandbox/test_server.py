"""Running the sandbox: the CLI in the foreground (signals) and running_sandbox's failure mode."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from metronome_sandbox import DEV_TOKEN, SandboxSettings, running_sandbox
from tests.sandbox.conftest import event

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_with_the_dev_token_and_stops_cleanly(
    database_url: str, monkeypatch: pytest.MonkeyPatch, stop: signal.Signals
) -> None:
    monkeypatch.delenv("METRONOME_BEARER_TOKEN", raising=False)
    command = [sys.executable, "-m", "metronome_sandbox", "--port", "0", "--rate-limit", "500"]
    with subprocess.Popen(
        command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            banner = process.stdout.readline()  # blocks until the server listens
            assert banner.startswith("Metronome sandbox listening on http://127.0.0.1:")
            base_url = banner.split(" on ", 1)[1].strip()
            headers = {"Authorization": f"Bearer {DEV_TOKEN}"}
            response = httpx.post(
                f"{base_url}/v1/ingest",
                json=[event("cli", timestamp=dt.datetime.now(dt.UTC))],
                headers=headers,
            )
            assert response.status_code == 200
            config = httpx.get(f"{base_url}/sandbox/config", headers=headers).json()
            assert config["rate_limit"] == 500
        finally:
            process.send_signal(stop)
            _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert DEV_TOKEN not in errors  # the token is named, never printed


def test_running_sandbox_reports_a_port_in_use(database_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = SandboxSettings(port=port, database_url=database_url)
        with pytest.raises(RuntimeError, match="did not start"), running_sandbox(settings):
            pass


def test_binding_beyond_loopback_warns(database_url: str) -> None:
    command = [sys.executable, "-m", "metronome_sandbox", "--host", "0.0.0.0", "--port", "0"]
    with subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, "USAGE_DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            banner = process.stdout.readline()  # blocks until the server listens
            assert banner.startswith("Metronome sandbox listening on http://0.0.0.0:")
        finally:
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=30)
    assert "WARNING: binding 0.0.0.0, not loopback" in errors
