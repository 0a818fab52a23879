"""The spool without a server to kill: a run that starts with MLflow unreachable keeps everything,
and ``lusynth tracking sync`` replays it into a real (SQLite) MLflow store once, with the status
the stage meant."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from lusynth import tracking
from lusynth.cli import main


@pytest.fixture
def dead_server(monkeypatch: pytest.MonkeyPatch) -> str:
    """An http:// tracking URI on which nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LUSYNTH_SYSTEM_METRICS", "0")
    return uri


def _sync(*args: str) -> int:
    return main(["tracking", "sync", *args])


def _spooled_run(client: MlflowClient, spool: Path) -> Callable[[], list[Any]]:
    """Finds the run a sync creates for the spool's run (by its ``lusynth.spool_run`` tag)."""
    key = next(r["run"] for r in map(json.loads, spool.read_text().splitlines()) if r["op"] == "run")

    def find() -> list[Any]:
        exp = client.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT)
        assert exp is not None
        return list(client.search_runs([exp.experiment_id], filter_string=f"tags.`lusynth.spool_run` = '{key}'"))

    return find


def test_unreachable_from_the_start_spools_everything_and_sync_replays_it_once(
    dead_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "clf"
    out.mkdir()
    (out / "model.txt").write_text("weights")
    capfd.readouterr()
    with tracking.stage_run("train_classifier", out_dir=out, params={"classifier": {"lr": 0.001}}, tags={"arm": "real"}) as tr:
        for step in range(1200):  # more than one batch
            tr.log_metrics({"loss": step / 100}, step=step)
        tr.log_artifact(out / "model.txt")
        tr.log_dict({"kept": 3}, "summary.json")
    err = capfd.readouterr().err
    assert tr.run_id is None and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [err.strip()], err
    spool = out / tracking.SPOOL_FILE
    assert spool.is_file()

    moved = tmp_path / "elsewhere" / "clf"  # artifact paths are relative to the spool: a moved output still syncs
    shutil.move(out, moved)
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    client = MlflowClient(tracking_uri=store)
    find = _spooled_run(client, moved / tracking.SPOOL_FILE)
    assert _sync(str(tmp_path / "elsewhere"), "--tracking-uri", store) == 0
    (run,) = find()
    assert run.info.status == "FINISHED"
    assert run.data.params["classifier.lr"] == "0.001" and run.data.tags["arm"] == "real"
    assert run.data.tags["lusynth.stage"] == "train_classifier"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1200))
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"model.txt", "summary.json"}
    assert not (moved / tracking.SPOOL_FILE).exists()
    capfd.readouterr()
    assert _sync(str(tmp_path / "elsewhere"), "--tracking-uri", store) == 0
    assert "nothing to upload" in capfd.readouterr().out
    assert len(find()) == 1 and len(client.get_metric_history(run.info.run_id, "loss")) == 1200


def test_a_stage_that_raises_while_unreachable_is_synced_as_failed(dead_server: str, tmp_path: Path) -> None:
    out = tmp_path / "gan"
    out.mkdir()
    with pytest.raises(ValueError, match="stage bug"):
        with tracking.stage_run("train_gan", out_dir=out) as tr:
            tr.log_metrics({"loss_d": 0.5}, step=1)
            raise ValueError("stage bug")
    spool = out / tracking.SPOOL_FILE
    ends = [r for r in map(json.loads, spool.read_text().splitlines()) if r["op"] == "end"]
    assert [e["status"] for e in ends] == ["FAILED"]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    find = _spooled_run(client, spool)
    assert _sync(str(out), "--tracking-uri", store) == 0
    (run,) = find()
    assert run.info.status == "FAILED" and run.data.metrics["loss_d"] == 0.5


def test_sync_without_a_server_says_so_in_one_line_and_keeps_the_spool(dead_server: str, tmp_path: Path,
                                                                       capfd: pytest.CaptureFixture[str]) -> None:
    with tracking.stage_run("generate", out_dir=tmp_path) as tr:
        tr.set_tags({"k": "v"})
    capfd.readouterr()
    assert _sync(str(tmp_path)) == 2
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1 and dead_server in err and "not reachable" in err
    assert (tmp_path / tracking.SPOOL_FILE).is_file()


def test_a_dataset_two_runs_create_at_once_is_retried_not_fatal() -> None:
    """Two parallel tasks logging one frame store can both miss it in MLflow's dataset table; the
    second insert fails on the unique key (seen in the demo: two classifiers reading one synthetic
    set). The replay retries, so the stage does not fail; any other error still surfaces."""
    from mlflow.exceptions import MlflowException

    from lusynth.tracking.spool import _log_inputs_racing

    seen = "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest"
    calls: list[int] = []

    def loses_the_race_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise MlflowException(seen)

    _log_inputs_racing(loses_the_race_once)
    assert len(calls) == 2

    def always_collides() -> None:
        calls.append(1)
        raise MlflowException(seen)

    calls.clear()
    with pytest.raises(MlflowException):
        _log_inputs_racing(always_collides, attempts=3)
    assert len(calls) == 3  # gives up after its attempts, with MLflow's own error

    def other_error() -> None:
        calls.append(1)
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: run abc not found")

    calls.clear()
    with pytest.raises(MlflowException, match="not found"):
        _log_inputs_racing(other_error)
    assert len(calls) == 1  # not retried
