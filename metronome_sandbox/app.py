"""The sandbox's Starlette application: Metronome's usage endpoints plus /sandbox/ test aids."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from metronome_sandbox import database, jsonutil, metrics, usage
from metronome_sandbox.controls import Controls
from metronome_sandbox.ratelimit import retry_after_headers
from metronome_sandbox.settings import SandboxSettings
from metronome_sandbox.store import Store
from metronome_sandbox.validation import ValidationError, check_text, validate_batch

log = logging.getLogger("metronome_sandbox")

MAX_BODY_BYTES = 8 * 2**20
Handler = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    """An error answered as `status` with {"message": message} and extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """JSON with exact decimals."""
    return Response(
        jsonutil.dumps(content), status_code=status, headers=headers, media_type="application/json"
    )


def error_response(error: HttpError) -> Response:
    """Metronome's 4xx/5xx envelope."""
    return json_response({"message": error.message}, error.status, error.headers)


def _decoded_body(raw: bytes, encoding: str) -> bytes:
    if len(raw) > MAX_BODY_BYTES:
        raise HttpError(413, f"body larger than {MAX_BODY_BYTES} bytes")
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "deflate"):
        raise HttpError(415, f"unsupported Content-Encoding {encoding!r}: use gzip or identity")
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 0))
    try:
        body = decompressor.decompress(raw, MAX_BODY_BYTES + 1)
    except zlib.error as error:
        raise HttpError(400, f"body is not valid {encoding}: {error}") from None
    if len(body) > MAX_BODY_BYTES:
        raise HttpError(413, f"decompressed body larger than {MAX_BODY_BYTES} bytes")
    if not decompressor.eof:
        raise HttpError(400, f"body is truncated {encoding}")
    return body


async def read_json(request: Request) -> Any:
    """The request body as JSON with Decimal numbers (gzip/deflate bodies decoded); 400 if bad."""
    body = _decoded_body(await request.body(), request.headers.get("content-encoding", ""))
    try:
        return jsonutil.loads(body)
    except (ValueError, RecursionError) as error:
        raise HttpError(400, f"body is not valid JSON: {error}") from None


class SandboxApi:
    """Request handlers sharing one store, one set of billable metrics and the run-time controls."""

    def __init__(self, settings: SandboxSettings, store: Store) -> None:
        self.store = store
        self.controls = Controls(settings)
        self.metrics = metrics.load()
        self.page_size = settings.usage_page_size
        self._token = settings.token.encode()

    def _authorize(self, request: Request) -> None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        valid = scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self._token
        )
        if not valid:
            raise HttpError(
                401, "Unauthorized: missing or invalid bearer token", {"WWW-Authenticate": "Bearer"}
            )

    def metronome(self, handler: Handler) -> Handler:
        """Wrap a Metronome endpoint: latency, bearer auth, errors as {"message": ...}."""

        async def endpoint(request: Request) -> Response:
            if self.controls.latency_ms:
                await asyncio.sleep(self.controls.latency_ms / 1000)
            try:
                self._authorize(request)
                return await handler(request)
            except HttpError as error:
                return error_response(error)
            except ValidationError as error:
                return error_response(HttpError(400, str(error)))

        return endpoint

    def test_aid(self, handler: Handler) -> Handler:
        """Wrap a /sandbox/ test aid: bearer auth too (no injected latency), same errors."""

        async def endpoint(request: Request) -> Response:
            try:
                self._authorize(request)
                return await handler(request)
            except HttpError as error:
                return error_response(error)

        return endpoint

    async def ingest(self, request: Request) -> Response:
        """POST /v1/ingest."""
        body = await read_json(request)
        if self.controls.bucket is not None:
            wait = self.controls.bucket.take(len(body) if isinstance(body, list) else 1)
            if wait is not None:
                headers = {"X-Metronome-Rate-Limit-Type": "client", **retry_after_headers(wait)}
                raise HttpError(429, "rate limit exceeded: too many events per second", headers)
        fault = self.controls.injected_fault()
        if fault is not None:
            log.info("injected %s before storing", fault)
            raise HttpError(fault, "injected fault: nothing was stored, retry the batch")
        await run_in_threadpool(self._validate_and_store, body)
        if self.controls.lose_ack():
            log.info("injected lost acknowledgement after storing")
            raise HttpError(500, "injected fault: the batch was stored but the answer was lost")
        return Response(status_code=200)

    def _validate_and_store(self, body: Any) -> None:
        now = self.controls.now()
        events = validate_batch(body, now)
        rejected = self.controls.reject_customer_ids
        for index, event in enumerate(events):
            if event.customer_id in rejected:
                raise ValidationError(
                    f"events[{index}].customer_id: customer {event.customer_id!r} is rejected "
                    "by the sandbox (reject_customer_ids)"
                )
        self.store.ingest(events, now)

    async def usage(self, request: Request) -> Response:
        """POST /v1/usage."""
        query = usage.parse_query(await read_json(request), self.metrics)
        cursor = request.query_params.get("next_page")
        start = usage.decode_cursor(cursor, query) if cursor else None
        limit = _page_limit(request.query_params.get("limit"), self.page_size)
        data, next_page = await run_in_threadpool(usage.usage_page, self.store, query, start, limit)
        return json_response({"data": data, "next_page": next_page})

    async def search(self, request: Request) -> Response:
        """POST /v1/events/search."""
        body = await read_json(request)
        ids = body.get("transactionIds") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(_storable(item) for item in ids):
            raise HttpError(400, "transactionIds must be an array of strings")
        found = await run_in_threadpool(self.store.search, ids, self.controls.now())
        by_type: dict[str, list[metrics.BillableMetric]] = {}
        for metric in self.metrics:
            by_type.setdefault(metric.event_type, []).append(metric)
        results = []
        for event in found:
            matched = [
                metric.search_view()
                for metric in by_type.get(event.event_type, [])
                if metric.property in event.properties
            ]
            results.append({**event.to_json(), "matched_billable_metrics": matched})
        return json_response(results)

    async def sandbox_events(self, request: Request) -> Response:
        """GET /sandbox/events[?customer_id=&event_type=]: accepted, de-duplicated events."""
        params = request.query_params
        if not all(_storable(value) for value in params.values()):
            raise HttpError(400, "query parameters must be valid text")
        found = await run_in_threadpool(
            self.store.events, params.get("customer_id"), params.get("event_type")
        )
        return json_response([event.to_json() for event in found])

    async def sandbox_config(self, request: Request) -> Response:
        """GET or POST /sandbox/config: show or change faults, rate limit, latency, rejections."""
        if request.method == "POST":
            try:
                self.controls.update(await read_json(request))
            except ValidationError as error:
                raise HttpError(400, str(error)) from None
        return json_response(self.controls.config())

    async def sandbox_clock(self, request: Request) -> Response:
        """GET or POST /sandbox/clock: show, freeze ({"now": "..."}) or unfreeze ({"now": null})."""
        if request.method == "POST":
            try:
                self.controls.set_clock(await read_json(request))
            except ValidationError as error:
                raise HttpError(400, str(error)) from None
        return json_response(self.controls.clock())

    async def sandbox_health(self, request: Request) -> Response:
        """GET /sandbox/health."""
        return json_response({"status": "ok", **self.controls.clock()})


def _storable(value: Any) -> bool:
    return isinstance(value, str) and check_text(value) is None


def _page_limit(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= usage.MAX_PAGE_SIZE:
        raise HttpError(400, f"limit must be an integer from 1 to {usage.MAX_PAGE_SIZE}")
    return int(raw)


async def _http_exception(request: Request, error: Exception) -> Response:
    # Unknown paths and methods get Metronome's JSON envelope too, not Starlette's plain text.
    assert isinstance(error, HTTPException)
    return json_response({"message": error.detail}, error.status_code, error.headers)


async def _unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return json_response({"message": "internal error in the sandbox"}, 500)


def create_app(settings: SandboxSettings) -> Starlette:
    """The sandbox app; connects to its database and creates the `sandbox_` tables if missing."""
    store = Store(settings.database_url or database.default_url())
    store.init_schema()
    api = SandboxApi(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.dispose()

    routes = [
        Route("/v1/ingest", api.metronome(api.ingest), methods=["POST"]),
        Route("/v1/usage", api.metronome(api.usage), methods=["POST"]),
        Route("/v1/events/search", api.metronome(api.search), methods=["POST"]),
        Route("/sandbox/events", api.test_aid(api.sandbox_events), methods=["GET"]),
        Route("/sandbox/config", api.test_aid(api.sandbox_config), methods=["GET", "POST"]),
        Route("/sandbox/clock", api.test_aid(api.sandbox_clock), methods=["GET", "POST"]),
        Route("/sandbox/health", api.test_aid(api.sandbox_health), methods=["GET"]),
    ]
    handlers = {HTTPException: _http_exception, Exception: _unexpected}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.api = api
    return app
