"""Pseudonymisation: keyed, stable, namespaced; the key is never a constant."""

from __future__ import annotations

import os
import stat

import pytest

from lusynth.data import keys
from lusynth.data.pseudonym import pseudonymise
from lusynth.errors import InputError


def test_keyed_and_stable() -> None:
    a = pseudonymise("PAT-0007", b"k" * 32)
    assert a == pseudonymise("PAT-0007", b"k" * 32)
    assert a != pseudonymise("PAT-0007", b"j" * 32)  # another key, another pseudonym
    assert "PAT" not in a and "0007" not in a
    assert pseudonymise("x", b"k" * 32, prefix="p") != pseudonymise("x", b"k" * 32, prefix="v")


def test_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.KEY_ENV, "0123456789abcdef-long-enough")
    key, origin = keys.load_key()
    assert key == b"0123456789abcdef-long-enough" and "env" in origin and "0123" not in origin


def test_short_key_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.KEY_ENV, "short")
    with pytest.raises(InputError, match="shorter than 16"):
        keys.load_key()


def test_key_file_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv(keys.KEY_ENV, raising=False)
    monkeypatch.setenv(keys.KEY_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(InputError, match="file not found"):
        keys.load_key()
    (tmp_path / "secret").write_text("s3cr3t-value-from-a-k8s-secret\n")
    monkeypatch.setenv(keys.KEY_FILE_ENV, str(tmp_path / "secret"))
    assert keys.load_key()[0] == b"s3cr3t-value-from-a-k8s-secret"
    # no env: a random per-user key is created once (0600) and then reused
    monkeypatch.delenv(keys.KEY_FILE_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    k1, _ = keys.load_key()
    k2, _ = keys.load_key()
    assert k1 == k2 and len(k1) == 64
    mode = stat.S_IMODE(os.stat(keys.default_key_file()).st_mode)
    assert mode == 0o600
