"""Headless Chromium driven over the DevTools protocol on a pipe: no websocket library, no driver.

Used by the README screenshots (scripts/screenshots.py) and the browser tests of the customer
portal. Needs Debian's `chromium` (/usr/bin/chromium, or the path in `CHROMIUM`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WIDTH, HEIGHT = 1600, 1000
PAGE_TIMEOUT_SECONDS = 60.0
STABLE_POLLS = 4  # the page counts as rendered when its DOM is unchanged this many polls running
POLL_SECONDS = 0.5
# A snapshot of the visible page: unchanged for a few polls means rendering is done.
DOM_SNAPSHOT = "document.body.innerHTML.length"


class ChromiumError(RuntimeError):
    """Chromium answered a DevTools command with an error, exited, or a page never rendered."""


def missing() -> str | None:
    """Why Chromium cannot start here, in one line; None when it can."""
    if shutil.which(CHROMIUM):  # a path, or a name on PATH
        return None
    return f"{CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM to a Chrome binary)"


class DevTools:
    """A DevTools-protocol client over Chromium's `--remote-debugging-pipe` (fds 3 and 4):
    NUL-terminated JSON messages, no websocket library needed."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self._out = to_browser
        self._in = from_browser
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []  # events received while waiting for answers

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result; events received meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(PAGE_TIMEOUT_SECONDS)
            if "method" in reply:
                self.events.append(reply)
            elif reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._in], [], [], remaining)[0]:
                raise ChromiumError("no answer from Chromium")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise ChromiumError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)


@dataclass
class Page:
    """One browser tab at a fixed viewport."""

    devtools: DevTools
    session: str

    def console_errors(self) -> list[str]:
        """Errors the page reported so far: uncaught exceptions, console.error, failed loads."""
        errors = []
        for event in self.devtools.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                thrown = details.get("exception", {}).get("description")
                errors.append(thrown or details.get("text", "exception"))
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] == "error":
                errors.append(" ".join(str(a.get("value", a)) for a in params["args"]))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
        return errors

    def resize(self, width: int, height: int) -> None:
        """Set the viewport (CSS pixels, one device pixel each)."""
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.devtools.call("Emulation.setDeviceMetricsOverride", metrics, self.session)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JS expression in the page (None when it throws)."""
        result = self.devtools.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session
        )
        return result.get("result", {}).get("value")

    def open(self, url: str, texts: Sequence[str]) -> None:
        """Navigate, then wait until every text is on the page and the DOM stops changing."""
        self.devtools.call("Page.navigate", {"url": url}, self.session)
        self.settle(texts, what=url)

    def settle(self, texts: Sequence[str] = (), what: str = "the page") -> None:
        """Wait until the texts are shown and the DOM is unchanged for a few polls running."""
        check = " && ".join(f"document.body.innerText.includes({json.dumps(t)})" for t in texts)
        deadline = time.monotonic() + PAGE_TIMEOUT_SECONDS
        last, stable = None, 0
        while stable < STABLE_POLLS:
            if time.monotonic() > deadline:
                shown = (self.evaluate("document.body.innerText") or "")[:300]
                raise ChromiumError(f"{what} did not show {list(texts)}; it shows: {shown!r}")
            time.sleep(POLL_SECONDS)
            ready = self.evaluate(f"document.readyState === 'complete' && ({check or 'true'})")
            snapshot = self.evaluate(DOM_SNAPSHOT) if ready else None
            stable = stable + 1 if ready and snapshot == last else 0
            last = snapshot

    def click(self, element: str) -> None:
        """Click the middle of the element a JS expression returns, with real mouse events."""
        box = self.evaluate(
            f"(() => {{ const r = ({element}).getBoundingClientRect(); "
            "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if not box:
            raise ChromiumError(f"nothing to click: {element}")
        for kind in ("mousePressed", "mouseReleased"):
            event = {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1}
            self.devtools.call("Input.dispatchMouseEvent", event, self.session)
        self.settle(what=f"the page after clicking {element}")

    def drag(self, start: Sequence[float], by: Sequence[float]) -> None:
        """Press the left button at `start`, move by `by`, release (e.g. to pan a graph)."""
        x, y = start
        steps = [("mousePressed", x, y), ("mouseMoved", x + by[0] / 2, y + by[1] / 2)]
        steps += [("mouseMoved", x + by[0], y + by[1]), ("mouseReleased", x + by[0], y + by[1])]
        for kind, at_x, at_y in steps:
            event = {"type": kind, "x": at_x, "y": at_y, "button": "left", "buttons": 1}
            self.devtools.call("Input.dispatchMouseEvent", event, self.session)
        self.settle(what="the page after dragging")

    def screenshot(self, path: Path) -> None:
        """Save the viewport as a PNG."""
        data = self.devtools.call("Page.captureScreenshot", {"format": "png"}, self.session)
        path.write_bytes(base64.b64decode(data["data"]))


def chromium_flags(profile: Path) -> list[str]:
    """Headless, quiet (no background traffic, no first-run UI), with a fresh profile."""
    return [
        "--headless",
        "--no-sandbox",  # Chromium refuses to start its sandbox as root in a container
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--remote-debugging-pipe",
    ]


def _above_stdio(fd: int) -> int:
    """Move `fd` to a number >= 10 so that wiring it to 3 and 4 never clobbers the other end."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


@contextlib.contextmanager
def chromium_page(scratch: Path) -> Iterator[Page]:
    """Headless Chromium with one tab; the pipe's ends become the browser's fds 3 and 4."""
    if reason := missing():
        raise ChromiumError(reason)
    commands_read, commands_write = os.pipe()
    replies_read, replies_write = os.pipe()
    commands_read, replies_write = _above_stdio(commands_read), _above_stdio(replies_write)
    wiring = (
        f'exec "$@" 3<&{commands_read} 4>&{replies_write} {commands_read}<&- {replies_write}>&-'
    )
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=scratch))
    with (scratch / "chromium.log").open("wb") as log:
        browser = subprocess.Popen(
            [
                "/bin/bash",
                "-c",
                wiring,
                "chromium",
                CHROMIUM,
                *chromium_flags(profile),
                "about:blank",
            ],
            pass_fds=(commands_read, replies_write),
            env={**os.environ, "TMPDIR": str(scratch)},  # its singleton socket dirs go too
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    os.close(commands_read)
    os.close(replies_write)
    try:
        devtools = DevTools(commands_write, replies_read)
        target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = devtools.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(devtools, attached["sessionId"])
        for domain in ("Page", "Runtime", "Log"):  # so console errors arrive as events
            devtools.call(f"{domain}.enable", {}, page.session)
        page.resize(WIDTH, HEIGHT)
        yield page
        with contextlib.suppress(ChromiumError, OSError):
            devtools.call("Browser.close")  # a clean exit; the group is stopped below anyway
    finally:
        os.close(commands_write)
        os.close(replies_read)
        stop_group(browser)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
