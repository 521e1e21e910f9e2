"""Client of the usage-billing API (Metronome's `POST /v1/ingest` and `POST /v1/usage`).

At least as careful as the official SDK: retries 408/409/429/5xx, timeouts and connection errors
with exponential backoff and jitter, honours `retry-after-ms` / `Retry-After` and `x-should-retry`,
never retries other 4xx. 401/403 stop the send (a configuration error). Batches of at most 100,
bounded concurrency, a client-side rate limit; a batch rejected with a 4xx is bisected so only the
offending events fail. A circuit breaker stops a send once the API has failed to answer
`circuit_breaker_threshold` requests in a row, so an outage costs a bounded number of requests
rather than a full retry sequence per batch. The token is only ever a request header.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import gzip
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import tenacity

from usage_billing import config, local_sandbox, periods

MAX_BATCH = 100
RETRYABLE_STATUS = frozenset({408, 409, 429})


def is_retryable(status: int | None) -> bool:
    """Whether a failure may succeed later: no answer at all, 408/409/429, or any 5xx."""
    return status is None or status in RETRYABLE_STATUS or status >= 500


def is_unavailable(status: int | None) -> bool:
    """Whether a failure says the API is not there: no answer, a timeout (408) or a 5xx. A 429 or
    another 4xx is an answer from a live API, and does not count towards the circuit breaker."""
    return status is None or status == 408 or status >= 500


class BillingApiAuthError(RuntimeError):
    """401/403: the token is missing, wrong or lacks rights. Never retried; stops the run."""


class BillingApiError(Exception):
    """A response that is not a success, with what the API said (never the request headers)."""

    def __init__(
        self,
        status: int | None,
        message: str,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ):
        super().__init__(f"{status or 'no response'}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.retryable = is_retryable(status) if should_retry is None else should_retry
        self.attempts = 1


class CircuitOpenError(BillingApiError):
    """The circuit breaker was open before this batch's first request: it was never sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(None, reason)
        self.attempts = 0


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one batch: accepted, permanently failed with the API's answer, or not sent
    at all because the circuit breaker had opened (`error` is then a CircuitOpenError)."""

    events: Sequence[dict[str, Any]]
    error: BillingApiError | None = None
    attempts: int = 1

    @property
    def accepted(self) -> bool:
        return self.error is None

    @property
    def not_sent(self) -> bool:
        return isinstance(self.error, CircuitOpenError)


class CircuitBreaker:
    """Shared by the threads of one send. Opens after `threshold` consecutive requests that found
    the API unavailable (any other answer resets the count) and stays open for the rest of the
    send: no request starts once it is open, and backoff sleeps end at once. The next send (the
    next run) starts closed, so a recovered API is found again."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.reason = ""
        self._failures = 0
        self._lock = threading.Lock()
        self._opened = threading.Event()

    @property
    def is_open(self) -> bool:
        return self._opened.is_set()

    def record(self, error: BillingApiError | None) -> None:
        """Count one request's outcome: None for an answer the API gave, or its error."""
        with self._lock:
            if self.is_open:
                return
            if error is None or not is_unavailable(error.status):
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self.threshold:
                self.reason = (
                    f"circuit breaker open: {self._failures} requests in a row found the billing "
                    f"API unavailable (last: {error})"
                )
                self._opened.set()

    def sleep(self, seconds: float) -> None:
        """Backoff that ends early when the breaker opens (nothing follows it then)."""
        self._opened.wait(seconds)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, then Retry-After), if 0-60 s."""
    if (ms := response.headers.get("retry-after-ms")) is not None:
        try:
            seconds = float(ms) / 1000
        except ValueError:
            seconds = None
    elif (value := response.headers.get("retry-after")) is not None:
        try:
            seconds = float(value)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            seconds = parsed.timestamp() - time.time() if parsed else None
    else:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 60 else None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        return response.text[:500] or response.reason_phrase


class RateLimiter:
    """Token bucket shared by the sending threads: never more than `rate` events per second."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._next_free = time.monotonic()

    def acquire(self, events: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_free)
            self._next_free = start + events / self.rate
        if start > now:
            time.sleep(start - now)  # pacing the sender is the point here


@dataclass(frozen=True)
class BillingApiClient:
    """Metronome usage client: where, with which token, and the delivery policy."""

    base_url: str
    bearer_token: str = field(repr=False)
    timeout_seconds: float = 60.0
    connect_timeout_seconds: float = 5.0
    max_retries: int = 5
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    max_concurrency: int = 4
    max_events_per_second: float | None = None
    gzip_bodies: bool = False
    circuit_breaker_threshold: int = 10

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.bearer_token}"},
            timeout=httpx.Timeout(self.timeout_seconds, connect=self.connect_timeout_seconds),
            limits=httpx.Limits(max_keepalive_connections=self.max_concurrency),
        )

    def _post_once(self, client: httpx.Client, events: Sequence[dict[str, Any]]) -> None:
        body = json.dumps(list(events), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self.gzip_bodies:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        try:
            response = client.post("/v1/ingest", content=body, headers=headers)
        except httpx.TimeoutException as error:
            raise BillingApiError(None, f"timeout: {type(error).__name__}") from None
        except httpx.TransportError as error:
            raise BillingApiError(None, f"connection error: {type(error).__name__}") from None
        if response.is_success:
            return
        if response.status_code in (401, 403):
            raise BillingApiAuthError(
                f"billing API at {self.base_url} answered {response.status_code} "
                f"({_message(response)}): check METRONOME_BEARER_TOKEN"
            )
        hint = response.headers.get("x-should-retry", "")
        should_retry = {"true": True, "false": False}.get(hint)
        raise BillingApiError(
            response.status_code, _message(response), _retry_after(response), should_retry
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, BillingApiError) and error.retry_after is not None:
            return error.retry_after
        backoff = min(
            self.backoff_initial_seconds * 2 ** (state.attempt_number - 1), self.backoff_max_seconds
        )
        return backoff * (1 - 0.25 * random.random())

    def post_batch(self, send: _Send, events: Sequence[dict[str, Any]]) -> int:
        """POST one batch, retrying what is retryable while the circuit breaker is closed; returns
        the requests it took. Raises BillingApiError (with `.attempts`, the requests made) when it
        gives up: retries exhausted, a non-retryable answer, or the breaker opened meanwhile; a
        CircuitOpenError when the breaker was open before its first request."""
        requests = 0
        last_error: BillingApiError | None = None

        def attempt() -> None:
            nonlocal requests, last_error
            if send.breaker.is_open:  # opened during our backoff: give up with what we know
                raise last_error or CircuitOpenError(send.breaker.reason)
            send.limiter.acquire(len(events))
            requests += 1
            try:
                self._post_once(send.client, events)
            except BillingApiError as error:
                send.breaker.record(error)
                last_error = error
                raise
            send.breaker.record(None)

        def worth_retrying(error: BaseException) -> bool:
            retryable = isinstance(error, BillingApiError) and error.retryable
            return retryable and not send.breaker.is_open

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(worth_retrying),
            wait=self._wait,
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            sleep=send.breaker.sleep,
            reraise=True,
        )
        try:
            retrying(attempt)
        except BillingApiError as error:
            error.attempts = requests
            raise
        return requests

    def _deliver(self, send: _Send, events: Sequence[dict[str, Any]]) -> list[BatchOutcome]:
        """Send a batch; on a permanent 4xx, split it so only the offending events fail."""
        try:
            return [BatchOutcome(events, attempts=self.post_batch(send, events))]
        except CircuitOpenError as error:
            return [BatchOutcome(events, error, attempts=0)]
        except BillingApiError as error:
            if error.retryable or len(events) == 1:
                return [BatchOutcome(events, error, error.attempts)]
            half = len(events) // 2
            return self._deliver(send, events[:half]) + self._deliver(send, events[half:])

    def send(
        self, events: Iterable[dict[str, Any]], on_outcome: Callable[[BatchOutcome], None]
    ) -> CircuitBreaker:
        """Send events in batches of at most 100, `max_concurrency` at a time; `on_outcome` is
        called in this thread for every batch as it settles. Stops at the first auth error.
        Returns the send's circuit breaker: when it opened, later batches were not sent."""
        breaker = CircuitBreaker(self.circuit_breaker_threshold)
        with self._client() as client, ThreadPoolExecutor(self.max_concurrency) as pool:
            send = _Send(client, RateLimiter(self.max_events_per_second), breaker)
            pending = [pool.submit(self._deliver, send, batch) for batch in _batches(events)]
            try:
                for future in pending:
                    for outcome in future.result():
                        on_outcome(outcome)
            except BillingApiAuthError:
                for future in pending:
                    future.cancel()
                raise
        return breaker

    def usage(
        self,
        starting_on: str,
        ending_before: str,
        billable_metrics: list[dict[str, Any]] | None = None,
        window_size: str = "none",
    ) -> Iterator[dict[str, Any]]:
        """Every row of `POST /v1/usage` over [starting_on, ending_before), following next_page.
        Values are parsed as Decimal: exact, as the API sends them."""
        body: dict[str, Any] = {
            "starting_on": starting_on,
            "ending_before": ending_before,
            "window_size": window_size,
        }
        if billable_metrics is not None:
            body["billable_metrics"] = billable_metrics
        next_page: str | None = None
        with self._client() as client:
            while True:
                params = {"next_page": next_page} if next_page else {}
                response = client.post("/v1/usage", json=body, params=params)
                if response.status_code in (401, 403):
                    raise BillingApiAuthError(f"billing API answered {response.status_code}")
                if not response.is_success:
                    raise BillingApiError(response.status_code, _message(response))
                page = json.loads(response.content, parse_float=Decimal)
                yield from page["data"]
                next_page = page.get("next_page")
                if not next_page:
                    return

    def healthy(self) -> bool:
        """True when an authenticated read (`/v1/usage` for yesterday, one row) succeeds."""
        today = periods.day_start(periods.now())
        body = {
            "starting_on": (today - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z"),
            "ending_before": today.isoformat().replace("+00:00", "Z"),
            "window_size": "none",
        }
        try:
            with self._client() as client:
                return client.post("/v1/usage", json=body, params={"limit": 1}).is_success
        except httpx.HTTPError:
            return False


@dataclass(frozen=True)
class _Send:
    """What the sending threads of one `send` share."""

    client: httpx.Client
    limiter: RateLimiter
    breaker: CircuitBreaker


def connect(settings: config.BillingApiSettings, **policy: Any) -> BillingApiClient:
    """A client for `settings`; in local mode the local sandbox is started first if it is not
    running (like the embedded database)."""
    if settings.local:
        local_sandbox.ensure_running(settings.base_url, settings.bearer_token)
    return BillingApiClient(settings.base_url, settings.bearer_token, **policy)


def from_environment(**policy: Any) -> BillingApiClient:
    """The client `METRONOME_BASE_URL` / `METRONOME_BEARER_TOKEN` configure, or local mode's."""
    return connect(config.billing_api_settings(), **policy)


def _batches(events: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == MAX_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
