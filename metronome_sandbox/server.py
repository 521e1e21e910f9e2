"""Run the sandbox under uvicorn: in the foreground (`serve`) or in a background thread
(`running_sandbox`, for tests, the demo and benchmarks)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

import uvicorn

from metronome_sandbox.app import create_app
from metronome_sandbox.settings import SandboxSettings

STARTUP_TIMEOUT_SECONDS = 30


class _Server(uvicorn.Server):
    """uvicorn.Server that reports its bound address once listening and stops on SIGINT/SIGTERM
    without re-raising the signal afterwards (uvicorn's default), so `serve` can return 0."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self.base_url: str | None = None

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            host = f"[{host}]" if ":" in host else host
            self.base_url = f"http://{host}:{port}"
            self._on_ready(self.base_url)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _config(settings: SandboxSettings, log_level: str, access_log: bool) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


def serve(settings: SandboxSettings, log_level: str = "info", access_log: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; prints `Metronome sandbox listening on http://HOST:PORT`."""

    def announce(base_url: str) -> None:
        print(f"Metronome sandbox listening on {base_url}", flush=True)

    _Server(_config(settings, log_level, access_log), announce).run()


@contextlib.contextmanager
def running_sandbox(settings: SandboxSettings) -> Iterator[str]:
    """Run a sandbox in a background thread; yields its base URL once it accepts connections.

    `settings.port` 0 picks a free port. The server stops (gracefully) when the block exits.
    """
    ready = threading.Event()
    server = _Server(_config(settings, "warning", access_log=False), lambda _: ready.set())
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as error:  # uvicorn exits via SystemExit when it cannot bind
            failure.append(error)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="metronome-sandbox", daemon=True)
    thread.start()
    if not ready.wait(STARTUP_TIMEOUT_SECONDS) or server.base_url is None:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_SECONDS)
        cause = failure[0] if failure else None
        raise RuntimeError(
            f"Metronome sandbox did not start on {settings.host}:{settings.port}"
        ) from cause
    try:
        yield server.base_url
    finally:
        server.should_exit = True
        thread.join()
