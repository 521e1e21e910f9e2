"""The browser driver without a browser: one line saying what to install, never a hang or a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import chromium

pytestmark = pytest.mark.unit


def test_a_missing_chromium_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "no-chromium-here"
    monkeypatch.setattr(chromium, "CHROMIUM", str(absent))
    with (
        pytest.raises(chromium.ChromiumError, match="apt-get install -y chromium") as error,
        chromium.chromium_page(tmp_path),
    ):
        pass
    assert str(absent) in str(error.value)
    assert not list(tmp_path.glob("chromium-*"))  # nothing started, no profile left behind
