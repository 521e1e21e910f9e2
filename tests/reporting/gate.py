"""A gate in front of the sandbox: counts ingest requests and can withhold acknowledgements.

Like toxiproxy in front of a real service, it forwards every request to the sandbox unchanged. It
counts `POST /v1/ingest` requests, and when `hold` says so for a batch the sandbox accepted, it
keeps the answer back (the batch is stored, the sender hears nothing) until `release()`. A test can
so stop a sender at a chosen point of a send and wait for that state, instead of sleeping.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Batch = list[dict[str, Any]]
PASSED_HEADERS = ("content-type", "retry-after", "retry-after-ms", "x-should-retry")
WAIT_SECONDS = 90


class Gate:
    """State shared by the gate's handler threads; see the module docstring."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.hold: Callable[[Batch], bool] = lambda batch: False
        self.requests = 0  # ingest requests received, answered or not
        self.held = 0  # accepted batches whose answer is being withheld
        self.accepted = Counter[str]()  # transaction id -> batches accepted that carried it
        self.url = ""
        self._changed = threading.Condition()
        self._released = threading.Event()

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        """Block until `predicate()` holds (re-checked whenever a request settles)."""
        with self._changed:
            if not self._changed.wait_for(predicate, WAIT_SECONDS):
                raise AssertionError(f"gave up waiting for {what}")

    def release(self) -> None:
        """Answer the held requests and hold nothing from now on."""
        with self._changed:
            self.hold = lambda batch: False
        self._released.set()

    def redirect(self, upstream: str) -> None:
        """Forward to another server from now on (an API that comes back elsewhere)."""
        previous, self.upstream = self.upstream, httpx.Client(base_url=upstream, timeout=30)
        previous.close()

    def resent(self) -> int:
        """Transaction ids the sandbox accepted more than once (and de-duplicated)."""
        return sum(count - 1 for count in self.accepted.values())

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length)
        method, path = handler.command, handler.path
        ingest = method == "POST" and path.startswith("/v1/ingest")
        if ingest:
            with self._changed:
                self.requests += 1
                self._changed.notify_all()
        headers = {
            name: value
            for name, value in handler.headers.items()
            if name.lower() in ("authorization", "content-type", "content-encoding")
        }
        try:
            response = self.upstream.request(method, path, content=body, headers=headers)
        except httpx.TransportError:
            handler.close_connection = True  # upstream unreachable: so is the gate
            return
        if ingest and response.status_code == 200:
            self._settle(handler, body)
        _answer(handler, response)

    def _settle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        """Note an accepted batch; hold its answer back if `hold` says so."""
        if handler.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        batch: Batch = json.loads(body)
        with self._changed:
            self.accepted.update(event["transaction_id"] for event in batch)
            holding = self.hold(batch)
            self.held += holding
            self._changed.notify_all()
        if holding:
            self._released.wait()


def _answer(handler: BaseHTTPRequestHandler, response: httpx.Response) -> None:
    try:
        handler.send_response(response.status_code)
        for name in PASSED_HEADERS:
            if name in response.headers:
                handler.send_header(name, response.headers[name])
        handler.send_header("content-length", str(len(response.content)))
        handler.end_headers()
        handler.wfile.write(response.content)
    except OSError:
        pass  # the sender is gone (killed): nobody to answer


@contextmanager
def running_gate(upstream: str) -> Iterator[Gate]:
    """A gate on a free loopback port in front of `upstream`, for the block's duration."""
    gate = Gate(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

        def do_GET(self) -> None:
            gate._forward(self)

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    gate.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="ingest-gate", daemon=True)
    thread.start()
    try:
        yield gate
    finally:
        gate.release()
        server.shutdown()
        server.server_close()
        gate.upstream.close()
