"""`lusynth pipeline upload|submit` through the real ``kfp.Client`` against a loopback stub of the
KFP v2beta1 REST API that records the requests (tests/pipeline/kfp_stub.py). There is no KFP
cluster here: these tests check the requests lusynth makes, not what KFP does with them."""

from __future__ import annotations

import json

import pytest
import yaml

from lusynth.cli import main
from tests.pipeline.kfp_stub import StubServer


@pytest.fixture()
def kfp_host(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    with StubServer() as (url, stub):
        yield url, stub


def _ids(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_upload_creates_the_pipeline_once_then_versions_found_by_content(kfp_host, capsys) -> None:  # type: ignore[no-untyped-def]
    url, stub = kfp_host
    assert main(["pipeline", "upload", "--host", url]) == 0
    first = _ids(capsys)
    (up,) = stub.calls("POST", "/apis/v2beta1/pipelines/upload")
    assert up.query["name"] == ["lusynth-experiment"]
    spec = next(yaml.safe_load_all(up.body["uploadfile"]))
    assert spec["pipelineInfo"]["name"] == "lusynth-experiment"
    # the same compiled pipeline again: its version is found, nothing uploaded
    assert main(["pipeline", "upload", "--host", url, "--version-name", first["version_name"]]) == 0
    assert _ids(capsys)["version_id"] == first["version_id"]
    assert len(stub.calls("POST", "/apis/v2beta1/pipelines/upload")) == 1 and not stub.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    # a changed pipeline (GPU) is a new version of the same pipeline, named by its content
    assert main(["pipeline", "upload", "--host", url, "--gpu"]) == 0
    gpu = _ids(capsys)
    (uv,) = stub.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    assert uv.query["pipelineid"] == [first["pipeline_id"]] and uv.query["name"] == [gpu["version_name"]]
    assert gpu["pipeline_id"] == first["pipeline_id"] and gpu["version_id"] != first["version_id"]
    assert gpu["version_name"].startswith("0.1.0-") and len(gpu["version_name"]) == len("0.1.0-") + 12
    ir = list(yaml.safe_load_all(uv.body["uploadfile"]))
    assert ir[0]["deploymentSpec"]["executors"]["exec-train-gan"]["container"]["image"].endswith("-cuda")
    # uploading the GPU pipeline again finds it by its content-derived name
    assert main(["pipeline", "upload", "--host", url, "--gpu"]) == 0
    assert _ids(capsys)["version_id"] == gpu["version_id"] and len(stub.calls("POST", "/apis/v2beta1/pipelines/upload_version")) == 1


def test_submit_runs_the_uploaded_version_with_resolved_parameters(kfp_host, capsys) -> None:  # type: ignore[no-untyped-def]
    url, stub = kfp_host
    assert main(["pipeline", "submit", "--host", url, "--profile", "tiny", "--experiment", "lusynth-test", "--set", "gan.epochs=3"]) == 0
    ids = _ids(capsys)
    (run,) = stub.calls("POST", "/apis/v2beta1/runs")
    body = run.body
    assert body["pipeline_version_reference"] == {"pipeline_id": ids["pipeline_id"], "pipeline_version_id": ids["version_id"]}
    assert "pipeline_spec" not in body  # a run of the uploaded version, not an anonymous package
    assert stub.experiments[body["experiment_id"]] == "lusynth-test"
    params = body["runtime_config"]["parameters"]
    assert params["profile"] == "tiny" and params["experiment"] == "lusynth-test"
    assert str(params["overrides"]["gan"]["epochs"]) == "3"  # every section resolved before submitting
    assert ids["run_id"]
    # submit's default is the CPU pipeline, as compile's
    spec = next(yaml.safe_load_all(stub.calls("POST", "/apis/v2beta1/pipelines/upload")[0].body["uploadfile"]))
    assert not any("accelerator" in e["container"]["resources"] for e in spec["deploymentSpec"]["executors"].values())


def test_schedule_creates_a_kfp_recurring_run_of_the_version(kfp_host, capsys) -> None:  # type: ignore[no-untyped-def]
    url, stub = kfp_host
    assert main(["pipeline", "submit", "--host", url, "--profile", "demo", "--schedule", "0 2 * * 1", "--job-name", "weekly"]) == 0
    ids = _ids(capsys)
    (rr,) = stub.calls("POST", "/apis/v2beta1/recurringruns")
    body = rr.body
    assert body["display_name"] == "weekly" and int(body["max_concurrency"]) == 1 and body["no_catchup"] is True
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * 1" == ids["cron"]
    assert body["pipeline_version_reference"] == {"pipeline_id": ids["pipeline_id"], "pipeline_version_id": ids["version_id"]}
    assert body["runtime_config"]["parameters"]["profile"] == "demo"
    assert not stub.calls("POST", "/apis/v2beta1/runs")
