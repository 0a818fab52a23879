"""Shared fixtures. Every test runs with a pseudonymisation key from the environment and a private
config home, so nothing touches the user's ~/.config, and with threads capped for 2-core CI."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("LUSYNTH_THREADS", "1")
os.environ.setdefault("LUSYNTH_PSEUDONYM_KEY", "test-key-0123456789abcdef")
os.environ.pop("MLFLOW_TRACKING_URI", None)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (``make test``): one worker per CPU of this process's quota (cgroup, affinity), not
    the host's core count; each worker's torch runs on one thread (LUSYNTH_THREADS above)."""
    from lusynth.runtime import cpu_quota

    saved = os.environ.pop("LUSYNTH_THREADS", None)  # set above for the tests, not the machine's size
    try:
        return cpu_quota()
    finally:
        if saved is not None:
            os.environ["LUSYNTH_THREADS"] = saved


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg-config"))


@pytest.fixture(scope="session")
def phantom_store(tmp_path_factory: pytest.TempPathFactory):
    """An ingested 64x64 phantom frame store (12 patients x 2 clips x 8 frames, fractions 0.5/1.0)."""
    from lusynth.data.ingest import IngestParams, ingest
    from lusynth.data.phantom import PhantomParams

    out = tmp_path_factory.mktemp("phantom") / "frames"
    ingest(None, out, params=IngestParams(train_fractions=(0.5, 1.0)), phantom=PhantomParams(patients=12, clips_per_patient=2, frames_per_clip=8))
    return out
