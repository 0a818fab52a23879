"""The compiled KFP IR: structure, parameters, task settings, secrets, and no credentials inside."""

from __future__ import annotations

import re

import pytest
import yaml

from lusynth.cli import main
from lusynth_pipelines.experiment import STAGE_RESOURCES

STAGES = {"ingest", "plan-gans", "plan-classifiers", "train-gan", "generate", "audit", "bundle-synthetic", "train-classifier",
          "evaluate", "export-register"}


def _load(path) -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all(open(path)))
    spec = docs[0]
    platform = docs[1] if len(docs) > 1 else {}
    return spec, platform


def _loop_members(spec: dict, loop_task: str) -> set[str]:
    ref = spec["root"]["dag"]["tasks"][loop_task]["componentRef"]["name"]
    return set(spec["components"][ref]["dag"]["tasks"])


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of the DAG, loops included, by task name."""
    out: dict[str, dict] = {}

    def walk(dag: dict) -> None:
        for name, task in dag.get("tasks", {}).items():
            out[name] = task
            comp = spec["components"].get(task["componentRef"]["name"], {})
            if "dag" in comp:
                walk(comp["dag"])

    walk(spec["root"]["dag"])
    return out


@pytest.fixture(scope="module", params=[False, True], ids=["cpu", "gpu"])
def compiled(request, tmp_path_factory):
    import importlib
    import os

    # components bind the image at import: reload them so the setting is read now, and again after
    import lusynth_components.audit  # noqa: E401
    import lusynth_components.bundle
    import lusynth_components.evaluate
    import lusynth_components.export_register
    import lusynth_components.generate  # noqa: E401
    import lusynth_components.ingest
    import lusynth_components.plan
    import lusynth_components.settings  # noqa: E401
    import lusynth_components.train_classifier
    import lusynth_components.train_gan
    import lusynth_pipelines.experiment as experiment

    modules = (lusynth_components.settings, lusynth_components.audit, lusynth_components.bundle, lusynth_components.evaluate,
               lusynth_components.export_register, lusynth_components.generate, lusynth_components.ingest,
               lusynth_components.plan, lusynth_components.train_classifier, lusynth_components.train_gan, experiment)
    os.environ["LUSYNTH_IMAGE"] = "registry.example.invalid/lusynth:9.9.9"
    try:
        for m in modules:
            importlib.reload(m)
        path = tmp_path_factory.mktemp("ir") / "pipeline.yaml"
        experiment.compile_pipeline(str(path), gpu=request.param)
    finally:
        del os.environ["LUSYNTH_IMAGE"]
        for m in modules:
            importlib.reload(m)
    return request.param, path


def test_dag_and_parameters(compiled) -> None:
    _, path = compiled
    spec, _ = _load(path)
    tasks = _tasks(spec)
    assert STAGES <= set(tasks)
    params = spec["root"]["inputDefinitions"]["parameters"]
    # one parameter source: the profile + per-section overrides, no parameter written out again
    assert set(params) == {"source", "profile", "overrides", "experiment", "register", "parent_run_id", "gan_checkpoints"}
    assert params["overrides"]["defaultValue"] == {}
    assert params["gan_checkpoints"]["defaultValue"] == ""
    # the mirror root reaches every GAN task (inside the loop, through the loop's own input)
    gan_in = tasks["train-gan"]["inputs"]["parameters"]["checkpoint_root"]["componentInputParameter"]
    assert gan_in.endswith("gan_checkpoints"), gan_in
    assert params["profile"]["defaultValue"] == "demo"
    # data flow: GANs feed generate, generate feeds the bundle, the bundle feeds every classifier, all feed evaluate
    deps = {n: set(t.get("dependentTasks", [])) for n, t in tasks.items()}
    loops = {n: {c for c, t in tasks.items() if c in _loop_members(spec, n)} for n in tasks if n.startswith("for-loop")}
    gan_loop = next(n for n, m in loops.items() if "train-gan" in m)
    clf_loop = next(n for n, m in loops.items() if "train-classifier" in m)
    assert loops[gan_loop] == {"train-gan", "generate", "audit"} and loops[clf_loop] == {"train-classifier"}
    assert "train-gan" in deps["generate"] and "generate" in deps["audit"]  # each synthetic set is audited
    assert deps["plan-gans"] == {"ingest"}
    assert deps[gan_loop] >= {"ingest", "plan-gans"}
    assert deps["bundle-synthetic"] == {gan_loop}
    assert deps[clf_loop] >= {"bundle-synthetic", "plan-classifiers", "ingest"}
    assert deps["evaluate"] >= {gan_loop, clf_loop, "ingest"}
    assert deps["export-register"] >= {"evaluate", gan_loop, clf_loop}


def test_images_resources_retries(compiled) -> None:
    gpu, path = compiled
    spec, _ = _load(path)
    executors = spec["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values()}
    assert images == {"registry.example.invalid/lusynth:9.9.9"}  # one setting, every component
    by_task = {}
    for name, task in _tasks(spec).items():
        comp = spec["components"][task["componentRef"]["name"]]
        if "executorLabel" in comp:
            by_task[name] = (task, executors[comp["executorLabel"]]["container"])
    for name, (task, container) in by_task.items():
        stage = name.replace("-", "_")
        r = STAGE_RESOURCES[stage]
        res = container["resources"]
        assert res["resourceCpuLimit"] == r.cpu_limit and res["resourceMemoryLimit"] == r.memory_limit, name
        has_gpu = "accelerator" in res
        assert has_gpu == (gpu and r.gpu), name
        if has_gpu:
            assert res["accelerator"]["resourceCount"] == "1"
        assert ("retryPolicy" in task) == (r.retries > 0), name
        assert task.get("cachingOptions", {}).get("enableCache", False) == r.caching, name


def test_secrets_referenced_and_no_credentials(compiled) -> None:
    _, path = compiled
    _, platform = _load(path)
    text = open(path).read()
    execs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, cfg in execs.items():
        secrets = {s["secretName"] for s in cfg.get("secretAsEnv", [])}
        assert {"lusynth-s3", "lusynth-mlflow-client"} <= secrets, name
        assert any(v["secretName"] == "lusynth-pseudonym-key" for v in cfg.get("secretAsVolume", [])), name
    # no literal credential anywhere in the IR
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert not re.search(r"(?i)(secret_access_key|password)\s*[:=]\s*['\"]?[A-Za-z0-9/+]{8,}", text)


def test_cli_compile(tmp_path) -> None:
    assert main(["pipeline", "compile", "--out", str(tmp_path / "p.yaml")]) == 0
    spec, _ = _load(tmp_path / "p.yaml")
    assert spec["pipelineInfo"]["name"] == "lusynth-experiment"


def test_submit_to_unreachable_host_fails_fast(capsys) -> None:
    import time

    t = time.perf_counter()
    rc = main(["pipeline", "submit", "--host", "http://127.0.0.1:9", "--schedule", "0 3 * * 1"])
    assert rc == 2 and time.perf_counter() - t < 10
    err = capsys.readouterr().err
    assert "KFP host http://127.0.0.1:9 is not reachable" in err and "Traceback" not in err
