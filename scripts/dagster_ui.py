"""`dagster dev` (webserver and daemon) as a child process, driven through its GraphQL API.

The browser UI talks to the webserver only through `/graphql`; these helpers send the same
queries and mutations, so a test exercises what a user's clicks would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from dagster_graphql.client.query import (
    LAUNCH_PARTITION_BACKFILL_MUTATION,
    LAUNCH_PIPELINE_EXECUTION_MUTATION,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The `dagster` console script installed beside this interpreter (else the same entry point).
_SCRIPT = Path(sys.executable).with_name("dagster")
DAGSTER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dagster"]

POLL_SECONDS = 1.0
STOP_GRACE_SECONDS = 30.0
LOG_TAIL_CHARS = 4000
ASSET_JOB = "__ASSET_JOB"
TERMINAL_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
TERMINAL_BACKFILL_STATUSES = frozenset(
    {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
)

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

DAEMON_HEALTH_QUERY = """
query DaemonHealth {
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } }
}
"""

BACKFILL_QUERY = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      title
      partitionNames
      error { message }
      runs { runId status tags { key value } }
    }
    ... on BackfillNotFoundError { message }
    ... on PythonError { message }
  }
}
"""


ASSET_NODES_QUERY = """
query AssetNodes {
  assetNodes { assetKey { path } isMaterializable isPartitioned }
}
"""


REPOSITORIES_QUERY = """
query Repositories {
  repositoriesOrError {
    ... on RepositoryConnection { nodes { name location { name } } }
  }
}
"""

RUN_STATUS_QUERY = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""


SENSORS_QUERY = """
query Sensors($repositorySelector: RepositorySelector!) {
  sensorsOrError(repositorySelector: $repositorySelector) {
    __typename
    ... on Sensors {
      results {
        name
        sensorState { status ticks(limit: 5) { status skipReason error { message } } }
      }
    }
    ... on PythonError { message }
  }
}
"""


class DagsterUiError(AssertionError):
    """The webserver or daemon did not do what the test expected; carries the log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Backfill:
    """A backfill as the UI's backfill page sees it."""

    id: str
    status: str
    partition_names: list[str]
    runs: list[dict[str, Any]]
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_BACKFILL_STATUSES


@dataclass
class DagsterUi:
    """A running `dagster dev`: its process, URL and log file."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-LOG_TAIL_CHARS:]

    def fail(self, message: str) -> DagsterUiError:
        return DagsterUiError(f"{message}\n--- dagster dev log (tail) ---\n{self.log_tail()}")

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL document; the `data` of the answer, or an error with the messages."""
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise self.fail(f"GraphQL errors: {[e.get('message') for e in body['errors']]}")
        return body["data"]

    def wait_until_loaded(self, timeout: float) -> None:
        """Poll until the webserver answers and the code location is loaded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.fail(f"dagster dev exited with {self.process.returncode}")
            with contextlib.suppress(httpx.TransportError, httpx.HTTPStatusError):
                if self._location_loaded():
                    return
            time.sleep(POLL_SECONDS)
        raise self.fail(f"the code location did not load within {timeout:.0f}s")

    def _location_loaded(self) -> bool:
        workspace = self.graphql(WORKSPACE_QUERY)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            return False
        entries = workspace["locationEntries"]
        for entry in entries:
            location = entry["locationOrLoadError"] or {}
            if location.get("__typename") == "PythonError":
                raise self.fail(f"code location {entry['name']} failed: {location['message']}")
        return bool(entries) and all(
            entry["loadStatus"] == "LOADED"
            and (entry["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
            for entry in entries
        )

    def daemon_statuses(self) -> list[dict[str, Any]]:
        data = self.graphql(DAEMON_HEALTH_QUERY)
        return data["instance"]["daemonHealth"]["allDaemonStatuses"]

    def partitioned_materializable_assets(self) -> list[list[str]]:
        """Asset keys (paths) the UI offers to backfill: materializable and partitioned."""
        nodes = self.graphql(ASSET_NODES_QUERY)["assetNodes"]
        return sorted(
            node["assetKey"]["path"]
            for node in nodes
            if node["isMaterializable"] and node["isPartitioned"]
        )

    def launch_backfill(
        self,
        partition_names: Sequence[str],
        asset_keys: Sequence[Sequence[str]],
        title: str,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Launch an asset backfill with the mutation the UI's "Materialize…" dialog sends."""
        params = {
            "partitionNames": list(partition_names),
            "assetSelection": [{"path": list(path)} for path in asset_keys],
            "fromFailure": False,
            "tags": [{"key": key, "value": value} for key, value in (tags or {}).items()],
            "title": title,
        }
        data = self.graphql(LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": params})
        result = data["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise self.fail(f"backfill not launched: {result.get('message', result)}")
        return result["backfillId"]

    def repository_selector(self) -> dict[str, str]:
        """The code location's one repository, as GraphQL selectors name it."""
        repository = self.graphql(REPOSITORIES_QUERY)["repositoriesOrError"]["nodes"][0]
        return {
            "repositoryLocationName": repository["location"]["name"],
            "repositoryName": repository["name"],
        }

    def _launch(self, selector: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        params = {
            "selector": {**self.repository_selector(), "pipelineName": ASSET_JOB, **selector},
            "mode": "default",
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        data = self.graphql(LAUNCH_PIPELINE_EXECUTION_MUTATION, {"executionParams": params})
        result = data["launchPipelineExecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise self.fail(f"run not launched: {result.get('message', result)}")
        return result["run"]["runId"]

    def launch_asset_check(self, asset_path: Sequence[str], check_name: str) -> str:
        """Execute one asset check alone, as the "Execute" button of the asset's Checks tab."""
        check = {"assetKey": {"path": list(asset_path)}, "name": check_name}
        return self._launch({"assetSelection": [], "assetCheckSelection": [check]}, {})

    def launch_partition_run(self, partition: str, asset_paths: Sequence[Sequence[str]]) -> str:
        """Materialize assets for one partition, as "Materialize selected" on a partition does."""
        assets = [{"path": list(path)} for path in asset_paths]
        return self._launch({"assetSelection": assets}, {"dagster/partition": partition})

    def sensor_ticks(self) -> dict[str, list[dict[str, Any]]]:
        """Each sensor's latest ticks (newest first), as the Automation page lists them."""
        variables = {"repositorySelector": self.repository_selector()}
        found = self.graphql(SENSORS_QUERY, variables)["sensorsOrError"]
        if found["__typename"] != "Sensors":
            raise self.fail(f"sensors: {found.get('message', found)}")
        return {sensor["name"]: sensor["sensorState"]["ticks"] for sensor in found["results"]}

    def wait_for_sensor_ticks(self, timeout: float) -> dict[str, list[dict[str, Any]]]:
        """Poll until the daemon has ticked every sensor at least once; a tick that failed is an
        error with the sensor's message."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ticks = self.sensor_ticks()
            failures = {
                name: tick["error"]["message"]
                for name, sensor_ticks in ticks.items()
                for tick in sensor_ticks
                if tick["status"] == "FAILURE"
            }
            if failures:
                raise self.fail(f"sensor ticks failed: {failures}")
            if ticks and all(ticks.values()):
                return ticks
            time.sleep(POLL_SECONDS)
        raise self.fail(f"not every sensor ticked within {timeout:.0f}s: {self.sensor_ticks()}")

    def wait_for_run(self, run_id: str, timeout: float) -> str:
        """Poll a run until it finishes; its final status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.graphql(RUN_STATUS_QUERY, {"runId": run_id})["runOrError"]
            if run["__typename"] != "Run":
                raise self.fail(f"run {run_id}: {run.get('message', run)}")
            if run["status"] in TERMINAL_RUN_STATUSES:
                return run["status"]
            time.sleep(POLL_SECONDS)
        raise self.fail(f"run {run_id} not finished after {timeout:.0f}s")

    def backfill(self, backfill_id: str) -> Backfill:
        data = self.graphql(BACKFILL_QUERY, {"backfillId": backfill_id})
        found = data["partitionBackfillOrError"]
        if found["__typename"] != "PartitionBackfill":
            raise self.fail(f"backfill {backfill_id}: {found.get('message', found)}")
        return Backfill(
            id=found["id"],
            status=found["status"],
            partition_names=found["partitionNames"] or [],
            runs=found["runs"],
            error=(found["error"] or {}).get("message"),
        )

    def wait_for_backfill(self, backfill_id: str, timeout: float) -> Backfill:
        """Poll the backfill until it reaches a terminal status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.fail(f"dagster dev exited with {self.process.returncode}")
            current = self.backfill(backfill_id)
            if current.finished:
                return current
            time.sleep(POLL_SECONDS)
        raise self.fail(
            f"backfill {backfill_id} not finished after {timeout:.0f}s: "
            f"{self.backfill(backfill_id)}; daemons: {self.daemon_statuses()}"
        )


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group (webserver, daemon, code server, run workers), wait,
    then SIGKILL whatever is left of that group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def dagster_dev(port: int) -> list[str]:
    """Plain `dagster dev` on the repository's workspace.yaml, as a platform engineer runs it."""
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    return [*DAGSTER, "dev", "-w", workspace, "-h", "127.0.0.1", "-p", str(port)]


def usage_billing_ui(port: int) -> list[str]:
    """`usage-billing ui`: `dagster dev` on the configured database and instance."""
    return [sys.executable, "-m", "usage_billing.cli", "ui", "--port", str(port)]


@contextlib.contextmanager
def running_dagster_dev(
    env: Mapping[str, str],
    log_path: Path,
    load_timeout: float = 120.0,
    command: Callable[[int], list[str]] = dagster_dev,
) -> Iterator[DagsterUi]:
    """Start `command(port)` (plain `dagster dev -w workspace.yaml` by default) on a free loopback
    port in its own process group; yield once the code location is loaded; always stop the whole
    group afterwards."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command(port),
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ui = DagsterUi(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        ui.wait_until_loaded(load_timeout)
        yield ui
    finally:
        stop_process_group(process)
