"""The client's circuit breaker: what opens it, what does not, and what it leaves unsent."""

from __future__ import annotations

import pytest

from usage_billing.billing_api import BillingApiError, CircuitBreaker, is_unavailable

pytestmark = pytest.mark.unit


def _fail(breaker: CircuitBreaker, status: int | None, times: int) -> None:
    for _ in range(times):
        breaker.record(BillingApiError(status, "down"))


def test_it_opens_after_the_threshold_of_consecutive_unavailable_answers() -> None:
    breaker = CircuitBreaker(threshold=3)
    _fail(breaker, 503, 2)
    assert not breaker.is_open
    _fail(breaker, None, 1)  # no answer at all counts too
    assert breaker.is_open
    assert "3 requests in a row" in breaker.reason and "no response" in breaker.reason


def test_an_answer_in_between_resets_the_count() -> None:
    breaker = CircuitBreaker(threshold=3)
    _fail(breaker, 500, 2)
    breaker.record(None)  # a success
    _fail(breaker, 502, 2)
    breaker.record(BillingApiError(429, "slow down"))  # a live API asking us to wait
    _fail(breaker, 504, 2)
    assert not breaker.is_open


def test_once_open_it_stays_open_for_the_rest_of_the_send() -> None:
    breaker = CircuitBreaker(threshold=1)
    _fail(breaker, 503, 1)
    breaker.record(None)  # a late answer of a request that was already in flight
    assert breaker.is_open


def test_backoff_ends_at_once_when_it_is_open() -> None:
    breaker = CircuitBreaker(threshold=1)
    _fail(breaker, 503, 1)
    breaker.sleep(3600)  # returns immediately: the test would hang otherwise


@pytest.mark.parametrize(
    ("status", "unavailable"),
    [(None, True), (408, True), (500, True), (503, True), (429, False), (409, False), (400, False)],
)
def test_only_missing_answers_count_as_unavailable(status: int | None, unavailable: bool) -> None:
    assert is_unavailable(status) is unavailable
