"""What a model reviewer sees in MLflow, read back through the REST API of a real ``mlflow server``
(not through lusynth's own client): a tiny tracked pipeline run (phantom ``tiny`` profile: ingest,
two GANs, generate, two classifiers, evaluate, export) and the reviewer's approve / reject.

Checked: the experiment opens in the model-training view; every stage run has its dataset inputs
(name, digest, source) and a ``stage · class · fraction · seed`` name; stage runs last as long as
their work; the parent run shows the verdicts and resolved parameters; per-arm CIs are metrics;
each registered version's source run is the training run and its logged model lists the version
and carries holdout metrics; no champion until a reviewer approves; the approve / reject trail;
``registry show --json``; bad versions and models are one line, exit 2.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lusynth.keys import Cell, GanKey

CLASSIFIER = "lusynth-lus-classifier"


def rest(base: str, path: str, **query: Any) -> dict[str, Any]:
    """GET ``/api/2.0/mlflow/<path>`` (the REST API the UI uses)."""
    q = urllib.parse.urlencode(query, doseq=True)
    with urllib.request.urlopen(f"{base}/api/2.0/mlflow/{path}" + (f"?{q}" if q else ""), timeout=30) as r:
        return dict(json.loads(r.read()))


def rest_post(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return dict(json.loads(r.read()))


def tags_of(obj: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in obj.get("tags", [])}


@dataclass
class TinyRun:
    url: str
    parent_id: str
    experiment_id: str
    frames: Path
    runs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def tiny_run(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    import os

    from lusynth.runtime import RunContext, temporary_env
    from lusynth.stages import run_stage
    from lusynth.tracking import parent_run

    root = tmp_path_factory.mktemp("reviewer")
    ctx = RunContext(progress=False, cache=False)
    with temporary_env({"MLFLOW_EXPERIMENT_NAME": "reviewer-view", "LUSYNTH_STAGE_CACHE": "off"}), \
            parent_run("pipeline · tiny", experiment="reviewer-view", profile="tiny",
                       params={"gan.epochs": 1}) as parent:
        frames = run_stage("ingest", root / "frames", profile="tiny", ctx=ctx).artefact.path
        gans = [run_stage("train_gan", root / f"gan-{c}", inputs={"frames": frames}, key=GanKey(c, 1.0), profile="tiny",
                          ctx=ctx).artefact.path for c in ("consolidation", "no_consolidation")]
        syn = run_stage("generate", root / "synthetic", inputs={"frames": frames, "gans": gans}, profile="tiny", ctx=ctx).artefact.path
        clfs = [run_stage("train_classifier", root / f"clf-{i}", inputs={"frames": frames, "synthetic": [syn]}, key=cell,
                          profile="tiny", ctx=ctx).artefact.path
                for i, cell in enumerate((Cell("real", 1.0, 0), Cell("real+synthetic", 1.0, 0)))]
        ev = run_stage("evaluate", root / "evaluation", inputs={"frames": frames, "classifiers": clfs, "gans": gans, "synthetic": [syn]},
                       profile="tiny", ctx=ctx).artefact.path
        run_stage("export_register", root / "models", inputs={"classifiers": clfs, "gans": gans, "evaluation": ev}, profile="tiny",
                  ctx=ctx)
    assert "LUSYNTH_PARENT_RUN_ID" not in os.environ
    exp = rest(mlflow_server, "experiments/get-by-name", experiment_name="reviewer-view")["experiment"]
    runs = rest_post(mlflow_server, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
    return TinyRun(mlflow_server, str(parent.run_id), exp["experiment_id"], Path(frames), runs)


def _by_stage(t: TinyRun, stage: str) -> list[dict[str, Any]]:
    return [r for r in t.runs if tags_of(r["data"]).get("lusynth.stage") == stage]


def test_experiment_opens_in_the_model_training_view(tiny_run: TinyRun) -> None:
    exp = rest(tiny_run.url, "experiments/get", experiment_id=tiny_run.experiment_id)["experiment"]
    assert tags_of(exp)["mlflow.experimentKind"] == "custom_model_development"


def test_every_stage_run_has_its_dataset_inputs_a_consistent_name_and_nests(tiny_run: TinyRun) -> None:
    from lusynth.data.framestore import open_store

    real = open_store(tiny_run.frames)
    names = {r["info"]["run_name"] for r in tiny_run.runs}
    assert {"train_gan · consolidation · 1 · seed 0", "train_gan · no_consolidation · 1 · seed 0",
            "generate · consolidation+no_consolidation · 1 · seed 0", "train_classifier · real · 1 · seed 0",
            "train_classifier · real+synthetic ×1 · 1 · seed 0", "evaluate", "export_register"} <= names, names
    for stage, contexts in (("train_gan", {"training"}), ("generate", {"training"}), ("train_classifier", {"training"}),
                            ("evaluate", {"holdout", "synthetic"}), ("export", {"holdout"})):
        runs = _by_stage(tiny_run, stage)
        assert runs, stage
        for r in runs:
            assert tags_of(r["data"])["mlflow.parentRunId"] == tiny_run.parent_id
            inputs = r["inputs"]["dataset_inputs"]
            assert contexts <= {tags_of(i)["mlflow.data.context"] for i in inputs}, (stage, inputs)
            real_in = [i for i in inputs if tags_of(i)["lusynth.digest"] == real.digest]
            assert real_in, stage
            ds = real_in[0]["dataset"]
            assert ds["digest"] == real.digest.removeprefix("sha256:")[:32] and ds["name"] == f"real:{real.path.name}"
            assert json.loads(ds["source"])["uri"] == real.path.resolve().as_uri() and ds["source_type"] == "local"
    mixed = next(r for r in _by_stage(tiny_run, "train_classifier") if "real+synthetic" in r["info"]["run_name"])
    assert "synthetic" in {tags_of(i)["mlflow.data.context"] for i in mixed["inputs"]["dataset_inputs"]}


def test_evaluate_run_lasts_as_long_as_its_work_and_holds_per_arm_intervals(tiny_run: TinyRun) -> None:
    (ev,) = _by_stage(tiny_run, "evaluate")
    seconds = (int(ev["info"]["end_time"]) - int(ev["info"]["start_time"])) / 1000
    assert seconds > 1.0, seconds  # predicting, bootstrapping and auditing happen inside the run (it was 0.1 s)
    metrics = {m["key"]: m["value"] for m in ev["data"]["metrics"]}
    for arm in ("real", "real_plus_synthetic"):
        lo, mid, hi = metrics[f"auc_{arm}_f1_ci_low"], metrics[f"auc_{arm}_f1"], metrics[f"auc_{arm}_f1_ci_high"]
        assert lo <= mid <= hi


def test_parent_run_shows_the_verdicts_and_resolved_parameters(tiny_run: TinyRun) -> None:
    parent = rest(tiny_run.url, "runs/get", run_id=tiny_run.parent_id)["run"]
    tags = tags_of(parent["data"])
    metrics = {m["key"] for m in parent["data"].get("metrics", [])}
    assert any(k.startswith("lusynth.verdict.q") for k in tags) and "lusynth.verdicts" in tags
    assert "auc_real_f1_ci_low" in metrics and "auc_real_f1_ci_high" in metrics
    params = {p["key"]: p["value"] for p in parent["data"]["params"]}
    assert params["gan.epochs"] == "1"


def test_versions_link_to_logged_models_of_their_training_runs_with_holdout_metrics(tiny_run: TinyRun) -> None:
    train = {r["info"]["run_id"]: r for r in _by_stage(tiny_run, "train_classifier") + _by_stage(tiny_run, "train_gan")}
    versions = rest(tiny_run.url, "model-versions/search", filter=f"name='{CLASSIFIER}'")["model_versions"]
    assert len(versions) == 2
    for v in versions:
        assert v["run_id"] in train  # the training run, not export_register
        assert v["source"].startswith("models:/m-")  # registered from the logged model, not a run's artifact path
        model = rest(tiny_run.url, "logged-models/" + v["source"].removeprefix("models:/"))["model"]
        assert model["info"]["source_run_id"] == v["run_id"]
        linked = json.loads(tags_of(model["info"])["mlflow.modelVersions"])
        assert {"name": CLASSIFIER, "version": v["version"]} in linked  # the UI shows the version, not "Register model"
        m = {x["key"]: x for x in model["data"]["metrics"]}
        assert m["holdout_auc_ci_low"]["value"] <= m["holdout_auc"]["value"] <= m["holdout_auc_ci_high"]["value"]
        assert m["holdout_auc"]["dataset_name"].startswith("real:")
    (export,) = _by_stage(tiny_run, "export")
    assert {"parity_max_abs_diff.real", "parity_max_abs_diff.real-synthetic"} <= {m["key"] for m in export["data"]["metrics"]}
    assert export["info"]["status"] == "FINISHED"
    gen = rest(tiny_run.url, "model-versions/search", filter="name='lusynth-lus-generator-consolidation'")["model_versions"]
    assert gen and gen[0]["run_id"] in train


def test_no_champion_until_a_reviewer_approves_with_a_trail(tiny_run: TinyRun, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from lusynth.cli import main

    model = rest(tiny_run.url, "registered-models/get", name=CLASSIFIER)["registered_model"]
    aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
    assert "champion" not in aliases
    versions = rest(tiny_run.url, "model-versions/search", filter=f"name='{CLASSIFIER}'")["model_versions"]
    # real is always allowed by the privacy rule, so the nominee is a candidate or challenger; the other arm is
    # not-nominated, or ineligible when its synthetic data did not pass its audit
    nominee = next(v for v in versions if tags_of(v)["lusynth.gate.decision"] in ("candidate", "challenger"))
    other = next(v for v in versions if v is not nominee)
    passed = tags_of(other)["lusynth.privacy_audit"] in ("passed", "not-needed")
    assert tags_of(other)["lusynth.gate.decision"] == ("not-nominated" if passed else "ineligible")
    real = next(v for v in versions if tags_of(v)["lusynth.arm"] == "real")
    mixed = next(v for v in versions if tags_of(v)["lusynth.arm"] == "real+synthetic")

    # a classifier whose synthetic data failed the audit cannot be approved (the tiny GANs copy)
    if tags_of(mixed)["lusynth.privacy_audit"] in ("failed", "missing"):
        assert main(["registry", "approve", mixed["version"], "--reason", "try"]) == 2
        assert "cannot be champion" in capsys.readouterr().err
    monkeypatch.setenv("USER", "dr-who")
    assert main(["registry", "approve", real["version"], "--reason", "holdout AUC CI acceptable"]) == 0
    assert f"v{real['version']} approved by dr-who" in capsys.readouterr().out
    model = rest(tiny_run.url, "registered-models/get", name=CLASSIFIER)["registered_model"]
    assert {a["alias"]: a["version"] for a in model["aliases"]}["champion"] == real["version"]
    t = tags_of(rest(tiny_run.url, "model-versions/get", name=CLASSIFIER, version=real["version"])["model_version"])
    assert t["lusynth.review.status"] == "approved" and t["lusynth.review.by"] == "dr-who"
    assert t["lusynth.review.reason"] == "holdout AUC CI acceptable" and t["lusynth.review.previous_champion"] == "none"
    assert t["lusynth.review.at"].endswith("+00:00")

    # reject the champion: it loses the alias; there was none before it, so none now
    assert main(["registry", "reject", real["version"], "--reason", "drift on the new probe", "--reviewer", "dr-no"]) == 0
    model = rest(tiny_run.url, "registered-models/get", name=CLASSIFIER)["registered_model"]
    assert "champion" not in {a["alias"] for a in model.get("aliases", [])}
    t = tags_of(rest(tiny_run.url, "model-versions/get", name=CLASSIFIER, version=real["version"])["model_version"])
    trail = json.loads(t["lusynth.review.trail"])["events"]
    assert [(e["action"], e["by"]) for e in trail] == [("approved", "dr-who"), ("rejected", "dr-no")]

    from lusynth.registry import RegistryError
    from lusynth.serve import load_model

    with pytest.raises(RegistryError, match="has no champion.*registry approve"):  # serving says what to do
        load_model(f"models:/{CLASSIFIER}@champion")

    capsys.readouterr()
    assert main(["registry", "show", CLASSIFIER, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (m,) = doc["models"]
    shown = {v["version"]: v for v in m["versions"]}
    assert shown[real["version"]]["review"]["status"] == "rejected" and len(shown[real["version"]]["review"]["trail"]) == 2
    assert shown[real["version"]]["source_run_id"] == real["run_id"] and "holdout_auc" in shown[real["version"]]["metrics"]

    for argv, msg in ((["registry", "approve", "x1", "--reason", "r"], "version 'x1'"),
                      (["registry", "approve", "99", "--reason", "r"], "no such version"),
                      (["registry", "reject", "1", "--reason", "r", "--model", "no-such-model"], "model 'no-such-model'"),
                      (["registry", "show", "no-such-model", "--json"], "model 'no-such-model'")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
