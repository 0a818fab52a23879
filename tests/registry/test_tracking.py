"""lusynth.tracking: one parent run, nested stage runs with lineage, dataset inputs, fail-fast on a dead server."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from lusynth import tracking
from tests.export import real_store


def test_unreachable_server_is_named_and_a_stage_run_spools_instead_of_failing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    with pytest.raises(tracking.TrackingError, match=f"127.0.0.1:{port}.*not reachable"):
        tracking.check_reachable(f"http://127.0.0.1:{port}")
    # the stage's work does not depend on the server (tests/tracking: the spool and its sync)
    with tracking.stage_run("train", local_dir=tmp_path) as tr:
        tr.log_metrics({"loss": 1.0}, step=1)
    assert tr.run_id is None and (tmp_path / tracking.SPOOL_FILE).is_file()


def test_parent_and_stage_runs_share_a_store_and_carry_lineage_and_inputs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("KFP_RUN_ID", "kfp-run-42")
    monkeypatch.setenv("LUSYNTH_DVC_REV", "abc123")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    store = real_store(tmp_path)
    with tracking.parent_run("pipeline", local_dir=tmp_path / "pipe", profile="demo", seed=7) as parent:
        assert os.environ[tracking.PARENT_RUN_ENV] == parent.run_id
        with tracking.stage_run("train_classifier", local_dir=tmp_path / "elsewhere", data_digests={"real": "sha256:x"}, seed=3) as tr:
            digest = tracking.log_frame_store_input(tr, store, "training")
    assert tracking.PARENT_RUN_ENV not in os.environ and "MLFLOW_TRACKING_URI" not in os.environ
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking.tracking_uri(tmp_path / "pipe"))  # the stage went into the parent's store
    run = client.get_run(tr.run_id)
    t = run.data.tags
    assert t["mlflow.parentRunId"] == parent.run_id and t["lusynth.kfp_run_id"] == "kfp-run-42"
    assert t["lusynth.dvc_rev"] == "abc123" and t["lusynth.profile"] == "demo" and t["lusynth.seed"] == "3"
    assert t["lusynth.data.real"] == "sha256:x" and "lusynth.version" in t
    (inp,) = run.inputs.dataset_inputs
    tags = {x.key: x.value for x in inp.tags}
    assert tags["mlflow.data.context"] == "training" and tags["lusynth.digest"] == digest
    assert any(k.startswith("system/") for k in run.data.metrics)  # system metrics, even for a short run
    assert client.get_run(parent.run_id).data.tags["lusynth.seed"] == "7"


def test_unresolved_kfp_placeholder_is_not_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFP_RUN_ID", "{{$.pipeline_job_uuid}}")
    assert "lusynth.kfp_run_id" not in tracking.lineage_tags()
    with pytest.raises(ValueError, match="context"):
        tracking.log_frame_store_input(None, ".", "train")  # type: ignore[arg-type]
