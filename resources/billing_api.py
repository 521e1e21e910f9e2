"""The usage-billing API (Metronome): where it is, the token, and the delivery policy."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from usage_billing import config
from usage_billing.billing_api import BillingApiClient, connect


class BillingApiResource(dg.ConfigurableResource):
    """Metronome's usage API, or local mode's sandbox; `get_client()` gives the plain client."""

    base_url: str | None = Field(
        default=None,
        description="Base URL of the billing API (`METRONOME_BASE_URL`, bound as an EnvVar). "
        "Unset together with bearer_token: read from the environment when the client is made, "
        "which in local mode means the sandbox on 127.0.0.1:8787, started on demand.",
    )
    bearer_token: str | None = Field(
        default=None,
        repr=False,
        description="Bearer token (`METRONOME_BEARER_TOKEN`, an EnvVar; with a loopback base_url "
        "and no token: the dev token). Only ever sent as a request header.",
    )
    timeout_seconds: float = Field(default=60.0, description="Read timeout of one request.")
    connect_timeout_seconds: float = Field(default=5.0, description="Connect timeout.")
    max_retries: int = Field(
        default=5, description="Retries of a batch after a retryable failure (408/409/429/5xx)."
    )
    backoff_initial_seconds: float = Field(
        default=0.5, description="First backoff; it doubles per retry, with jitter."
    )
    backoff_max_seconds: float = Field(default=8.0, description="Longest backoff between retries.")
    max_concurrency: int = Field(default=4, description="Batches in flight at once.")
    max_events_per_second: float | None = Field(
        default=None, description="Client-side rate limit in events per second (None: none)."
    )
    gzip_bodies: bool = Field(default=False, description="Send ingest bodies gzip-compressed.")
    circuit_breaker_threshold: int = Field(
        default=10,
        ge=1,
        description="Consecutive requests that find the API unavailable (no answer, 408, 5xx) "
        "after which a run stops sending: the batch that was retrying goes to the dead-letter "
        "queue as retryable, batches not yet tried stay pending in the outbox, the run fails, and "
        "the next run (or the redrive) sends both with the same transaction ids. Bounds what an "
        "outage costs: at most this many requests plus the batches in flight, instead of a full "
        "retry sequence per batch.",
    )

    def get_client(self) -> BillingApiClient:
        """The plain client with this configuration (starting the local sandbox if asked)."""
        if self.base_url is None and self.bearer_token is None:
            settings = config.billing_api_settings()  # the environment as it is now
        else:
            settings = config.billing_api_settings(
                {
                    "METRONOME_BASE_URL": self.base_url or "",
                    "METRONOME_BEARER_TOKEN": self.bearer_token or "",
                }
            )
        policy = self.model_dump(exclude={"base_url", "bearer_token"})
        return connect(settings, **policy)
