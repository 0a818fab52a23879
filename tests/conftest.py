"""Shared fixtures. Every test runs with a pseudonymisation key from the environment and a private
config home, so nothing touches the user's ~/.config, and with threads capped for 2-core CI."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("LUSYNTH_THREADS", "1")
os.environ.setdefault("LUSYNTH_PSEUDONYM_KEY", "test-key-0123456789abcdef")
os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg-config"))
