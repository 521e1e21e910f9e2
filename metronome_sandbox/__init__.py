"""A local server that behaves like Metronome's usage API (DESIGN.md §7), like stripe-mock.

Public API: `SandboxSettings`, `DEV_TOKEN`, `create_app`, `serve`, `running_sandbox`. The server
parts load lazily so that `metronome_sandbox.settings` stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from metronome_sandbox.settings import DEV_TOKEN, SandboxSettings

if TYPE_CHECKING:
    from metronome_sandbox.app import create_app
    from metronome_sandbox.server import running_sandbox, serve

__all__ = ["DEV_TOKEN", "SandboxSettings", "create_app", "running_sandbox", "serve"]

_LAZY = {"create_app": "metronome_sandbox.app", "running_sandbox": "metronome_sandbox.server"}
_LAZY["serve"] = "metronome_sandbox.server"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'metronome_sandbox' has no attribute {name!r}")
