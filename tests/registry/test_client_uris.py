"""The registry client borrows MLflow's global URIs for a block and gives back exactly what was set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_registry_block_leaves_no_tracking_uri_set_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # after a registry call, tracking_uri(local_dir) must still choose local_dir's store: restoring the
    # *resolved* default URI would write it into MLFLOW_TRACKING_URI and pin it for the process
    import mlflow
    from mlflow import MlflowClient

    from lusynth.registry.client import _global_uri
    from lusynth.tracking.client import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlflow.set_tracking_uri(None)
    (tmp_path / "a").mkdir()
    store = f"sqlite:///{tmp_path / 'a' / 'mlruns.db'}"
    with _global_uri(MlflowClient(tracking_uri=store, registry_uri=store)):
        assert mlflow.get_tracking_uri() == store
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert tracking_uri(tmp_path / "b") == f"sqlite:///{(tmp_path / 'b').resolve() / 'mlruns.db'}"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")  # a user's own setting survives the block
    with _global_uri(MlflowClient(tracking_uri=store, registry_uri=store)):
        pass
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:1"
