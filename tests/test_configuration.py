"""Configuration fails fast with one line naming the variable; the dev token never leaves
loopback; a real token never goes to a default URL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import PROJECT_ROOT
from usage_billing import config
from usage_billing.config import ConfigurationError
from usage_billing.resources import BillingApiResource

TOKEN = "tok-REAL-not-for-localhost"


@pytest.mark.unit
def test_local_mode_only_when_neither_variable_is_set() -> None:
    local = config.billing_api_settings({})
    assert local.local and local.base_url == "http://127.0.0.1:8787"
    assert local.bearer_token == config.LOCAL_DEV_TOKEN
    remote = config.billing_api_settings(
        {"METRONOME_BASE_URL": "https://api.metronome.com/", "METRONOME_BEARER_TOKEN": TOKEN}
    )
    assert (remote.base_url, remote.bearer_token, remote.local) == (
        "https://api.metronome.com",
        TOKEN,
        False,
    )
    # a sandbox on another loopback port needs no token, and is not started on demand
    other = config.billing_api_settings({"METRONOME_BASE_URL": "http://[::1]:9999"})
    assert other.bearer_token == config.LOCAL_DEV_TOKEN and not other.local


@pytest.mark.unit
@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"METRONOME_BEARER_TOKEN": TOKEN}, "METRONOME_BASE_URL"),
        ({"METRONOME_BASE_URL": "https://api.metronome.com"}, "METRONOME_BEARER_TOKEN"),
        ({"METRONOME_BASE_URL": "http://10.0.0.8:8787"}, "METRONOME_BEARER_TOKEN"),
        (
            {"METRONOME_BASE_URL": "api.metronome.com", "METRONOME_BEARER_TOKEN": TOKEN},
            "METRONOME_BASE_URL",
        ),
        ({"METRONOME_BASE_URL": "ftp://x", "METRONOME_BEARER_TOKEN": TOKEN}, "METRONOME_BASE_URL"),
        (
            {"METRONOME_BASE_URL": "http://h:99999", "METRONOME_BEARER_TOKEN": TOKEN},
            "METRONOME_BASE_URL",
        ),
        ({"USAGE_DATABASE_URL": "mysql://root@h/db"}, "USAGE_DATABASE_URL"),
        ({"USAGE_DATABASE_URL": "not a url"}, "USAGE_DATABASE_URL"),
        ({"DAGSTER_PG_URL": "postgresql://h"}, "DAGSTER_PG_URL"),
        ({"USAGE_BILLING_NOW": "2025-03-01T00:00:00"}, "USAGE_BILLING_NOW"),
        ({"USAGE_BILLING_NOW": "yesterday"}, "USAGE_BILLING_NOW"),
        ({"USAGE_ALERTS_WEBHOOK_URL": "hooks.slack.com/x"}, "USAGE_ALERTS_WEBHOOK_URL"),
        ({"USAGE_RATE_CARD": "/nonexistent/card.yaml"}, "USAGE_RATE_CARD"),
        ({"USAGE_PORTAL_SECRET": TOKEN}, "USAGE_PORTAL_SECRET"),  # too short for a key
    ],
)
def test_a_setting_that_cannot_work_is_one_line_naming_its_variable(
    environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        config.check(environ)
    message = str(refused.value)
    assert message.startswith(variable) or f" {variable}" in message
    assert "\n" not in message
    assert TOKEN not in message  # a secret is never part of an error


@pytest.mark.unit
def test_an_explicit_resource_with_a_token_and_no_url_refuses_before_sending() -> None:
    with pytest.raises(ConfigurationError, match="METRONOME_BASE_URL"):
        BillingApiResource(bearer_token=TOKEN).get_client()


def _load_code_location(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("METRONOME_", "USAGE_"))}
    return subprocess.run(
        [sys.executable, "-c", "import usage_assets.definitions"],
        cwd=PROJECT_ROOT,
        env={**keep, **environ},
        capture_output=True,
        text=True,
    )


@pytest.mark.integration
def test_the_code_location_refuses_to_load_and_says_which_variable() -> None:
    refused = _load_code_location({"METRONOME_BEARER_TOKEN": TOKEN})
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("usage_billing.config.ConfigurationError: METRONOME_BEARER_TOKEN is set")
    assert TOKEN not in refused.stderr
    assert _load_code_location({}).returncode == 0


@pytest.mark.integration
def test_every_command_refuses_a_token_without_a_base_url_in_one_line() -> None:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("METRONOME_")}
    for command in (["db", "url"], ["materialize", "--month", "2025-03"], ["dlq", "redrive"]):
        done = subprocess.run(
            [sys.executable, "-m", "usage_billing.cli", *command],
            env={**keep, "METRONOME_BEARER_TOKEN": TOKEN},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2, command
        [line] = done.stderr.splitlines()
        assert line.startswith(
            "usage-billing: METRONOME_BEARER_TOKEN is set but METRONOME_BASE_URL"
        )
        assert TOKEN not in done.stderr
