"""Against a real ``mlflow server``: the registry after a pipeline run, the gate both ways, loading by alias."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lusynth.export.stage import ExportedModels, export_and_register
from lusynth.registry import CANDIDATE, CHALLENGER, CHAMPION, RegistryNames, approve, list_versions
from lusynth.tracking import mlflow_client
from tests.registry.conftest import PipelineOutputs


@pytest.fixture(scope="module")
def first_run(mlflow_server: str, pipeline: PipelineOutputs):  # type: ignore[no-untyped-def]
    from lusynth.tracking import parent_run

    with parent_run("pipeline test", profile="demo", seed=0) as parent:
        r = export_and_register(pipeline.root / "models", classifier_dirs=pipeline.classifiers, gan_dirs=pipeline.gans,
                                evaluation_dir=pipeline.evaluation, profile="demo")
    return r, parent.run_id


def test_registry_holds_versions_aliases_tags_and_model_cards(mlflow_server: str, pipeline: PipelineOutputs, first_run) -> None:  # type: ignore[no-untyped-def]
    r, parent_id = first_run
    client = mlflow_client()
    report = json.loads((pipeline.evaluation / "report.json").read_text())
    versions = {(v.name, v.version): v for v in list_versions(client)}
    clf = [v for (n, _), v in versions.items() if n == "lusynth-lus-classifier"]
    assert sorted(v.tags["lusynth.arm"] for v in clf) == ["real", "real+synthetic"]  # best per arm
    nominee = next(v for v in clf if v.tags["lusynth.arm"] == r.nominee_arm)
    assert CANDIDATE in nominee.aliases and nominee.decision == CANDIDATE and "no current champion" in nominee.reason
    assert CHAMPION not in nominee.aliases  # the pipeline never makes a champion: a reviewer does
    assert f"arm-{r.nominee_arm.replace('+', '-')}" in nominee.aliases
    other = next(v for v in clf if v is not nominee)
    # an arm whose synthetic data did not pass its audit is ineligible whether nominated or not; others are not-nominated
    passed = other.tags["lusynth.privacy_audit"] in ("passed", "not-needed")
    assert other.decision == ("not-nominated" if passed else "ineligible"), (other.decision, other.tags["lusynth.privacy_audit"])
    assert not {CHAMPION, CANDIDATE, CHALLENGER} & set(other.aliases)
    # tags: holdout AUC with CI from the evaluation, arm, fraction, privacy, data digest, pipeline run, hash
    ev = next(c for c in report["classifiers"] if Path(c["dir"]).name == Path(nominee.tags["lusynth.source_dir"]).name)
    assert float(nominee.tags["lusynth.holdout_auc"]) == pytest.approx(ev["metrics"]["frame"]["val"]["auc"]["value"], abs=1e-6)
    assert float(nominee.tags["lusynth.holdout_auc_lo"]) <= float(nominee.tags["lusynth.holdout_auc"]) <= float(nominee.tags["lusynth.holdout_auc_hi"])
    assert nominee.tags["lusynth.data_digest"] == report["config"]["frames_digest"]
    assert nominee.tags["lusynth.pipeline_run"] == parent_id and nominee.tags["lusynth.fraction"] == "1"
    mixed = next(v for v in clf if v.tags["lusynth.arm"] == "real+synthetic")
    assert mixed.tags["lusynth.privacy_audit"] == "failed"  # noisy copies of training frames
    assert len(nominee.tags["lusynth.onnx_sha256"]) == 64
    card = client.get_model_version("lusynth-lus-classifier", nominee.version).description
    for section in ("## Intended use", "## Data", "## Metrics", "## Privacy audit", "## Limitations", "## Promotion gate"):
        assert section in card
    assert nominee.tags["lusynth.holdout_auc"][:4] in card
    # the ONNX flavour with a signature and an input example
    import mlflow

    mv = client.get_model_version("lusynth-lus-classifier", nominee.version)
    info = mlflow.models.get_model_info(mv.source)
    assert "onnx" in info.flavors and info.signature is not None and info.saved_input_example_info is not None
    assert info.flavors["onnx"].get("providers") == ["CPUExecutionProvider"]
    # generators: one model per class, privacy failed -> challenger, decision tagged
    for label in ("consolidation", "no_consolidation"):
        g = [v for (n, _), v in versions.items() if n == f"lusynth-lus-generator-{label}"]
        assert len(g) == 1 and g[0].aliases == [CHALLENGER] and g[0].tags["lusynth.privacy_audit"] == "failed"
    # the stage run nests under the pipeline run and carries lineage
    run = client.get_run(r.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent_id and run.data.tags["lusynth.profile"] == "demo"
    assert run.data.tags.get("lusynth.git_commit") or run.data.tags.get("lusynth.version")


def _report_with_auc(pipeline: PipelineOutputs, dst: Path, value: float, lo: float, hi: float) -> Path:
    """A copy of the evaluation with every classifier's holdout AUC set to the given numbers (gate input)."""
    rep = json.loads((pipeline.evaluation / "report.json").read_text())
    for c in rep["classifiers"]:
        c["metrics"]["frame"]["val"]["auc"] = {"value": value, "lo": lo, "hi": hi}
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "report.json").write_text(json.dumps(rep))
    return dst


def test_promotion_gate_in_both_directions(mlflow_server: str, pipeline: PipelineOutputs, tmp_path: Path) -> None:
    names = RegistryNames(classifier="gate-test-classifier", generator_prefix="gate-test-generator-")
    real_only = [pipeline.classifiers[0]]
    client = mlflow_client()

    def run(value: float, lo: float, hi: float) -> tuple[str, str]:
        ev = _report_with_auc(pipeline, tmp_path / f"ev-{value}-{lo}", value, lo, hi)
        r = export_and_register(tmp_path / "models", classifier_dirs=real_only, evaluation_dir=ev, names=names)
        (v,) = r.registered
        return v.version, v.decision

    v1, d1 = run(0.80, 0.70, 0.90)
    assert d1 == CANDIDATE
    approve(client, names.classifier, v1, reason="first model", reviewer="test")  # the human step
    v2, d2 = run(0.75, 0.60, 0.85)  # lower bound 0.60 < 0.80 - 0.02: not shown non-inferior
    assert d2 == CHALLENGER
    assert client.get_model_version_by_alias(names.classifier, "champion").version == v1
    assert client.get_model_version_by_alias(names.classifier, "challenger").version == v2
    assert "0.600 < champion v" in client.get_model_version(names.classifier, v2).tags["lusynth.gate.reason"]
    v3, d3 = run(0.90, 0.79, 0.97)  # 0.79 >= 0.80 - 0.02
    assert d3 == CANDIDATE
    assert client.get_model_version_by_alias(names.classifier, "candidate").version == v3
    assert client.get_model_version_by_alias(names.classifier, "champion").version == v1  # until a reviewer approves v3


def test_serving_loads_the_champion_by_alias_and_checks_its_hash(mlflow_server: str, pipeline: PipelineOutputs, first_run) -> None:  # type: ignore[no-untyped-def]
    from lusynth.classifier.train import load_classifier
    from lusynth.data.framestore import open_store
    from lusynth.serve import ModelIntegrityError, load_model
    from lusynth.serve.app import predict

    r, _ = first_run
    client = mlflow_client()
    if not any(CHAMPION in v.aliases for v in list_versions(client, "lusynth-lus-classifier")):
        nominee = client.get_model_version_by_alias("lusynth-lus-classifier", CANDIDATE)
        approve(client, "lusynth-lus-classifier", nominee.version, reason="serving test", reviewer="test")
    m = load_model("models:/lusynth-lus-classifier@champion")
    champ = client.get_model_version_by_alias("lusynth-lus-classifier", "champion")
    assert m.version == str(champ.version) and m.sha256 == champ.tags["lusynth.onnx_sha256"]
    st = open_store(pipeline.real)
    frames = np.asarray(st.frames[st.indices(split="holdout")][:5])
    src = load_classifier(champ.tags["lusynth.source_dir"])
    np.testing.assert_allclose(predict(m, frames)[:, 1], src.predict_proba(frames), atol=1e-4)
    # a registry record that does not match the file: refused before loading
    client.set_model_version_tag("lusynth-lus-classifier", champ.version, "lusynth.onnx_sha256", "0" * 64)
    try:
        with pytest.raises(ModelIntegrityError, match="sha256"):
            load_model("models:/lusynth-lus-classifier@champion")
    finally:
        client.set_model_version_tag("lusynth-lus-classifier", champ.version, "lusynth.onnx_sha256", m.sha256)
    from lusynth.registry import RegistryError

    with pytest.raises(RegistryError, match="registry show"):
        load_model("models:/lusynth-lus-classifier@no-such-alias")


def test_registry_show_cli_prints_versions_aliases_and_decisions(mlflow_server: str, first_run, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import lusynth.cli.registry  # noqa: F401 - registers the commands until COMMAND_MODULES lists it
    from lusynth.cli import main

    monkeypatch.setenv("COLUMNS", "300")  # rich folds words in a narrow terminal
    assert main(["registry", "show", "lusynth-lus-classifier"]) == 0
    out = capsys.readouterr().out
    assert "candidate" in out and "not-nominated" in out and "lusynth-lus-classifier" in out
    assert "a reviewer does" in out  # the rule is printed with the table


def test_export_record_reads_back_as_the_stage_returned_it(first_run) -> None:  # type: ignore[no-untyped-def]
    from lusynth.util import file_sha256

    r, _ = first_run
    assert ExportedModels.load(r.path) == r
    for e in (*r.classifiers.values(), *r.generators.values()):
        assert file_sha256(r.path / e.file) == e.sha256


def test_a_generator_whose_privacy_audit_fails_gets_no_alias(mlflow_server: str, pipeline: PipelineOutputs, tmp_path: Path) -> None:
    """`lusynth audit`'s decision travels through the evaluation: fail -> registered without alias,
    insufficient evidence -> challenger (never champion)."""
    names = RegistryNames(classifier="audit-test-classifier", generator_prefix="audit-test-generator-")
    rep = json.loads((pipeline.evaluation / "report.json").read_text())
    labels = sorted({a["label"] for a in rep["audits"]})
    decisions = dict(zip(labels, ("fail", "insufficient_evidence"), strict=False))
    for a in rep["audits"]:
        a["gate"] = {"passed": False, "decision": decisions[a["label"]], "reasons": [f"{decisions[a['label']]} by test"]}
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "report.json").write_text(json.dumps(rep))
    r = export_and_register(tmp_path / "models", classifier_dirs=[pipeline.classifiers[0]], gan_dirs=pipeline.gans,
                            evaluation_dir=ev, names=names)
    gens = {v.name: v for v in r.registered if v.name.startswith(names.generator_prefix)}
    failed, unsure = gens[names.generator(labels[0])], gens[names.generator(labels[1])]
    assert failed.aliases == [] and failed.decision == "ineligible" and "fail by test" in failed.reason
    assert unsure.aliases == [CHALLENGER]
    assert not mlflow_client().get_registered_model(failed.name).aliases


def test_a_retried_export_finds_its_own_versions_instead_of_registering_duplicates(mlflow_server: str, pipeline: PipelineOutputs,
                                                                                     tmp_path: Path) -> None:
    """KFP retries export_register with caching off: the second attempt of one pipeline run must find
    the versions the first registered (by the ONNX sha256 tag), also after a crash half-way."""
    from lusynth.registry.client import COMPLETE_TAG
    from lusynth.tracking import parent_run

    names = RegistryNames(classifier="retry-test-classifier", generator_prefix="retry-test-generator-")
    client = mlflow_client()

    def attempt(out: str) -> ExportedModels:
        return export_and_register(tmp_path / out, classifier_dirs=pipeline.classifiers, gan_dirs=pipeline.gans,
                                   evaluation_dir=pipeline.evaluation, names=names, profile="demo")

    def all_versions() -> list[tuple[str, str]]:
        return sorted((v.name, v.version) for v in list_versions(client, names=names))

    with parent_run("pipeline retry test", profile="demo") as parent:
        first = attempt("a1")
        before = all_versions()
        assert len(before) == len(first.registered) >= 3
        champion = client.get_model_version_by_alias(names.classifier, CANDIDATE)
        # the first attempt "crashed" after creating the nominee's version: no aliases, not complete
        client.delete_registered_model_alias(names.classifier, CANDIDATE)
        client.delete_model_version_tag(names.classifier, champion.version, COMPLETE_TAG)
        second = attempt("a2")
    assert all_versions() == before  # no duplicate
    assert [(v.name, v.version, v.decision, v.aliases) for v in second.registered] == \
        [(v.name, v.version, v.decision, v.aliases) for v in first.registered]
    # the retry finished the half-done version with the first attempt's decision, not a new one against itself
    assert client.get_model_version_by_alias(names.classifier, CANDIDATE).version == champion.version
    assert client.get_model_version(names.classifier, champion.version).tags[COMPLETE_TAG] == "true"
    assert all(client.get_model_version(n, v).tags["lusynth.pipeline_run"] == parent.run_id for n, v in before)

    # another pipeline run registering the same files is a new decision: new versions
    with parent_run("pipeline retry test 2", profile="demo"):
        third = attempt("a3")
    assert {v.version for v in third.registered if v.name == names.classifier}.isdisjoint(
        {v.version for v in first.registered if v.name == names.classifier})
