"""The MLflow parent run of a cluster run, against a real ``mlflow server``: the first task opens it
(a retry finds it again), stage runs nest under it, the exit handler closes it FINISHED or FAILED."""

from __future__ import annotations

import pytest

from lusynth.tracking import mlflow_client


def test_open_is_idempotent_stages_nest_and_close_sets_the_status(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lusynth.tracking import join_pipeline_run, stage_run
    from lusynth.tracking.pipeline_run import close_pipeline_run, open_pipeline_run

    client = mlflow_client()
    run_id = open_pipeline_run("kfp-run-1", experiment="cluster-test", params={"profile": "demo", "gan.epochs": 3}, profile="demo")
    assert open_pipeline_run("kfp-run-1", experiment="cluster-test") == run_id  # a retried opening task
    other = open_pipeline_run("kfp-run-2", experiment="cluster-test")
    assert other != run_id
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING" and run.data.params["gan.epochs"] == "3"
    assert run.data.tags["lusynth.kfp_run_id"] == "kfp-run-1" and run.data.tags["lusynth.stage"] == "pipeline"

    # what a stage task does with the id it is given
    # join_pipeline_run writes os.environ: setenv first so the test's end restores both (a leaked
    # parent run id would make later tests' exports look like retries of this pipeline run)
    monkeypatch.setenv("LUSYNTH_PARENT_RUN_ID", "")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "lusynth")
    join_pipeline_run("cluster-test", run_id)
    with stage_run("evaluate", run_name="evaluate") as tr:
        pass
    assert client.get_run(tr.run_id).data.tags["mlflow.parentRunId"] == run_id
    assert client.get_run(tr.run_id).info.experiment_id == run.info.experiment_id

    assert close_pipeline_run("kfp-run-1", succeeded=True, experiment="cluster-test") == run_id
    assert close_pipeline_run("kfp-run-2", succeeded=False, experiment="cluster-test") == other
    assert client.get_run(run_id).info.status == "FINISHED" and client.get_run(other).info.status == "FAILED"
    # nothing opened for this KFP run (e.g. `lusynth run` opened it itself): nothing to close
    assert close_pipeline_run("kfp-run-3", succeeded=True, experiment="cluster-test") is None
    with pytest.raises(ValueError, match="KFP run id"):
        open_pipeline_run("{{$.pipeline_job_uuid}}", experiment="cluster-test")


def test_a_task_finds_its_parent_run_by_the_kfp_run_id(mlflow_server: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """On a cluster the tasks take no parent run id (it would be a new input in every submission and
    KFP's cache would never serve them): each finds the run its KFP run's first task opened."""
    from lusynth.tracking import stage_run
    from lusynth.tracking.pipeline_run import join_kfp_run, open_pipeline_run

    client = mlflow_client()
    opened = open_pipeline_run("kfp-run-7", experiment="cluster-find")
    open_pipeline_run("kfp-run-8", experiment="cluster-find")  # another submission's run, in the same experiment
    monkeypatch.setenv("LUSYNTH_PARENT_RUN_ID", "")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "lusynth")
    monkeypatch.setenv("KFP_RUN_ID", "kfp-run-7")
    join_kfp_run("cluster-find", "")
    with stage_run("train_gan", run_name="train_gan") as tr:
        pass
    assert client.get_run(tr.run_id).data.tags["mlflow.parentRunId"] == opened

    # a parent given (a caller's run, or `lusynth run`'s in the environment) wins over the lookup
    monkeypatch.setenv("LUSYNTH_PARENT_RUN_ID", "")
    join_kfp_run("cluster-find", "given-run")
    import os

    assert os.environ["LUSYNTH_PARENT_RUN_ID"] == "given-run"

    # nothing opened for this KFP run: one warning line, and the stage run is not nested under a wrong one
    monkeypatch.setenv("LUSYNTH_PARENT_RUN_ID", "")
    monkeypatch.setenv("KFP_RUN_ID", "kfp-run-9")
    join_kfp_run("cluster-find", "")
    assert os.environ["LUSYNTH_PARENT_RUN_ID"] == ""
    err = capsys.readouterr().err
    assert "KFP run kfp-run-9 was not found" in err and "Traceback" not in err
    # outside KFP (no run id, or the placeholder left unresolved) nothing is looked up
    monkeypatch.setenv("KFP_RUN_ID", "{{$.pipeline_job_uuid}}")
    join_kfp_run("cluster-find", "")
    assert os.environ["LUSYNTH_PARENT_RUN_ID"] == "" and capsys.readouterr().err == ""
