"""End to end on the phantom: train the grid at one fraction, evaluate, read the report."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from lusynth.classifier.params import ClassifierParams
from lusynth.classifier.train import train_classifier
from lusynth.cli import main
from lusynth.data.framestore import open_store
from lusynth.evaluate.params import EvaluateParams
from lusynth.evaluate.run import evaluate
from lusynth.metrics.nearcopy import NearCopyPolicy
from lusynth.runtime import RunContext
from tests.classifier import write_real_store, write_synthetic_store


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("e2e")
    real_dir = write_real_store(d / "real")
    real = open_store(real_dir)
    syn = []
    for label in real.classes:  # stand-in for GAN output: noisy copies of the class's training frames
        idx = real.indices(split="train", label=label, fraction=1.0)
        syn.append(write_synthetic_store(d / f"syn-{label}", np.asarray(real.frames[idx]), label, fraction=1.0, noise=12))
    params = ClassifierParams(steps=120)  # ~10 epochs of the real arm, the same steps for every arm
    clfs = []
    for arm in ("real", "real+aug", "real+synthetic", "synthetic"):
        out = d / f"clf-{arm}"
        train_classifier(real_dir, out, arm=arm, fraction=1.0, seed=0, synthetic_dirs=() if arm in ("real", "real+aug") else syn,
                         params=params, progress=False, ctx=RunContext(track=False))
        clfs.append(out)
    return {"dir": d, "real": real_dir, "clfs": clfs, "syn": syn}


def test_real_classifier_beats_chance_and_report_has_the_table(experiment: dict) -> None:
    d = experiment["dir"]
    r = evaluate(experiment["real"], d / "eval", classifier_dirs=experiment["clfs"], synthetic_dirs=experiment["syn"],
                 params=EvaluateParams(n_bootstrap=200), progress=False, ctx=RunContext(track=False))
    assert r.headline_metrics["auc_real_f1"] > 0.8
    report = r.report
    real = next(c for c in report["classifiers"] if c["arm"] == "real")
    assert real["metrics"]["patient"]["val"]["auc"]["lo"] <= real["metrics"]["patient"]["val"]["auc"]["value"]
    assert report["protocol"]["folds"] == 1 and report["protocol"]["primary_endpoint"] == "patient-level auc"
    assert sum(report["n_patients"].values()) == report["config"]["n_holdout_patients"]
    assert [q["question"] for q in report["questions"]] == ["a", "b"]
    for q in report["questions"]:
        assert q["verdict"] in ("superior", "non-inferior", "inferior", "inconclusive")
        assert {"estimate", "ci", "min_detectable_difference", "p_value", "method"} <= set(q)
    assert all(0 <= c["patient_threshold"] <= 1 for c in report["classifiers"])
    pf = report["audits"][0]["fidelity_patient"]
    assert {"synthetic", "real_floor"} <= set(pf["pixels"]) and 0 < pf["pixels"]["real_floor"]["mmd_p_value"] <= 1
    md, html = r.markdown.read_text(), r.html.read_text()
    assert "## Fidelity per patient" in md and "### (a) " in md and "minimum detectable difference" in md
    # the per-patient 1-NN has no 0.5 ideal (a perfect generator reads above the real floor): read against the floor
    assert "| 1-NN accuracy: synthetic (read against the floor) | 1-NN accuracy: real floor |" in md
    assert "| training fraction | arm | training runs | AUC (patient, ↑) |" in md
    assert all(f"| 1 | {arm} |" in md for arm in ("real", "real+aug", "real+synthetic", "synthetic"))
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert str(d) not in md and str(d) not in text  # paths relative to the run directory
    assert "<table>" in html and "data:image/png;base64," in html and "src='figures/" not in html
    assert len(report["audits"]) == 2 and r.privacy_passed is False  # noisy copies are memorisation
    # per-patient fidelity per family: one split here, so estimates without intervals, in the report and the metrics
    (fam,) = report["fidelity_families"]
    assert fam["generator"] == "dcgan" and fam["fine_detail"]["n_cells"] == 2 and fam["fine_detail"]["ci"] == [None, None]
    assert "### Per-patient fidelity, with intervals" in md and "[no interval]" in md
    assert r.headline_metrics[f"fidelity_patient_fine_detail_dcgan_f{fam['fraction']:g}"] == pytest.approx(fam["fine_detail"]["estimate"])
    assert set(r.roc) == {c["name"] for c in report["classifiers"]} and r.roc[real["name"]]["fpr"][0] == 0
    assert (d / "eval" / "figures" / "learning_curve.png").stat().st_size > 1000


def test_the_long_table_scores_every_test_patient_once_per_classifier(experiment: dict) -> None:
    d = experiment["dir"]
    r = evaluate(experiment["real"], d / "eval-long", classifier_dirs=experiment["clfs"], params=EvaluateParams(n_bootstrap=20),
                 progress=False, ctx=RunContext(track=False))
    scores = r.patient_scores()
    real = open_store(experiment["real"])
    hold = real.manifest.iloc[real.indices(split="holdout")]
    assert {"fold", "repeat", "arm", "ratio", "fraction", "gan_seed", "classifier_seed", "patient_id", "label", "score",
            "threshold"} <= set(scores.columns)
    assert len(scores) == 4 * hold["patient_id"].nunique()
    assert (scores.groupby("arm")["patient_id"].apply(sorted).map(tuple).nunique()) == 1  # the same patients for every arm
    assert set(scores["patient_id"]) == set(hold["patient_id"].astype(str))
    assert scores.loc[scores["arm"] == "real+synthetic", "ratio"].eq(1.0).all() and scores.loc[scores["arm"] == "real", "ratio"].eq(0).all()
    # a patient's label is its class (lusynth.stats.scores: positive when any clip is), its score a probability
    truth = hold.groupby("patient_id")["label"].first().map(lambda c: int(c == real.header["positive_class"]))
    assert scores.set_index("patient_id")["label"].groupby(level=0).first().sort_index().tolist() == truth.sort_index().tolist()
    assert scores["score"].between(0, 1).all()


def test_cli_evaluates_a_real_only_experiment(experiment: dict, capsys: pytest.CaptureFixture[str]) -> None:
    d = experiment["dir"]
    rc = main(["evaluate", "-f", str(experiment["real"]), "-o", str(d / "eval-cli"), "-c", str(experiment["clfs"][0]),
               "--n-bootstrap", "50", "--no-track", "--quiet"])
    assert rc == 0
    report = json.loads((d / "eval-cli" / "report.json").read_text())
    assert report["audits"] == [] and report["privacy_gate"]["passed"] is None
    assert report["table"]["arms"] == ["real"]


def test_cli_reports_a_missing_classifier_as_a_user_error(tmp_path: Path, experiment: dict, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", "-f", str(experiment["real"]), "-o", str(tmp_path / "x"), "-c", str(tmp_path / "nope"), "--no-track"])
    assert rc == 2 and "nope: not a classifier directory" in capsys.readouterr().err


def _fake_gan_dir(path: Path, label: str, fraction: float) -> Path:
    """A train-gan output directory with an untrained discriminator (wiring only, not quality)."""
    import torch

    from lusynth.gan.checkpoint import save_checkpoint
    from lusynth.models.dcgan import DCGANConfig, Discriminator, Generator
    from lusynth.params import as_dict

    torch.manual_seed(0)
    cfg = DCGANConfig(image_size=64)
    ck = "checkpoints/step_00000010.pt"
    (path / "checkpoints").mkdir(parents=True)
    save_checkpoint(path / ck, {"config": as_dict(cfg), "discriminator": Discriminator(cfg).state_dict(),
                                "generator": Generator(cfg).state_dict()})
    (path / "chosen.json").write_text(json.dumps({"checkpoint": ck}))
    (path / "gan.json").write_text(json.dumps({"label": label, "fraction": fraction, "run_id": None}))
    (path / "fidelity_history.json").write_text(json.dumps(
        [{"step": s, "epoch": s, "mmd_pixels": 1 / s, "nn1_pixels": 0.5 + 0.5 / s, "mmd_embed": 2 / s, "nn1_embed": 0.6} for s in (1, 5, 10)]))
    return path


def test_gan_directories_add_the_discriminator_attack_and_fidelity_curves(experiment: dict) -> None:
    d = experiment["dir"]
    real = open_store(experiment["real"])
    gans = [_fake_gan_dir(d / f"gan-{c}", c, 1.0) for c in real.classes]
    r = evaluate(experiment["real"], d / "eval-gan", classifier_dirs=experiment["clfs"][:1], gan_dirs=gans,
                 synthetic_dirs=experiment["syn"], params=EvaluateParams(n_bootstrap=50), progress=False, ctx=RunContext(track=False))
    report = r.report
    for a in report["audits"]:
        assert 0 <= a["privacy"]["discriminator_mia_auc"] <= 1 and a["gan_dir"]
        assert len(a["fidelity_history"]) == 3
    assert any(name.startswith("fidelity_") for name in r.figures)


def test_the_audit_applies_and_records_the_near_copy_policy_it_is_given(experiment: dict) -> None:
    d = experiment["dir"]
    runs = {p: evaluate(experiment["real"], d / f"eval-p{p:g}", classifier_dirs=experiment["clfs"][:1], synthetic_dirs=experiment["syn"],
                        params=EvaluateParams(n_bootstrap=10), near_copy=NearCopyPolicy(percentile=p), progress=False,
                        ctx=RunContext(track=False))
            for p in (1.0, 50.0)}
    reports = {p: r.report for p, r in runs.items()}
    for p, report in reports.items():
        assert report["config"]["near_copy"] == {"percentile": p, "features": "pixels", "reference": "pooled"}
        assert all(a["near_copy"] == report["config"]["near_copy"] for a in report["audits"])
    for lo, hi in zip(reports[1.0]["audits"], reports[50.0]["audits"], strict=True):
        assert hi["privacy"]["near_copy_threshold"] > lo["privacy"]["near_copy_threshold"]


def test_a_withheld_generator_skips_its_classifiers_and_the_report_and_export_name_them(experiment: dict, tmp_path: Path) -> None:
    """A synthetic set whose class generate withheld (its GAN memorises): the synthetic arm that needs
    it is recorded as not trained, evaluate scores the rest and names both, the privacy gate fails,
    export leaves the untrained cell out. Before, one memorising GAN stopped the whole run."""
    from lusynth.classifier.run import ClassifierRun
    from lusynth.classifier.train import load_classifier
    from lusynth.errors import InputError
    from lusynth.export.stage import export_and_register

    real = open_store(experiment["real"])
    label = real.classes[1]
    frames = np.asarray(real.frames[real.indices(split="train", label=label, fraction=1.0)])
    held = write_synthetic_store(tmp_path / "syn-held", frames, label, fraction=1.0, noise=0.5, withheld="only 0 of 200 frames passed")
    sets = [experiment["syn"][0], held]
    run = train_classifier(experiment["real"], tmp_path / "clf-syn", arm="synthetic", fraction=1.0, seed=0, synthetic_dirs=sets,
                           params=ClassifierParams(steps=4, eval_every=2), progress=False, ctx=RunContext(track=False))
    assert run.skipped and "withheld by generate: only 0 of 200 frames passed" in run.skipped and f"class {label!r}" in run.skipped
    assert not (tmp_path / "clf-syn" / "model.pt").exists() and ClassifierRun.load(tmp_path / "clf-syn").skipped == run.skipped
    with pytest.raises(InputError, match="was not trained"):
        load_classifier(tmp_path / "clf-syn")
    real_clf = experiment["clfs"][0]
    r = evaluate(experiment["real"], tmp_path / "eval", classifier_dirs=[real_clf, tmp_path / "clf-syn"], synthetic_dirs=sets,
                 params=EvaluateParams(n_bootstrap=20), progress=False, ctx=RunContext(track=False))
    rep = r.report
    assert [w["label"] for w in rep["withheld"]] == [label] and [a["label"] for a in rep["audits"]] == [real.classes[0]]
    assert [c["arm"] for c in rep["skipped_classifiers"]] == ["synthetic"] and [c["arm"] for c in rep["classifiers"]] == ["real"]
    assert r.privacy_passed is False and any("withheld by generate" in x for x in rep["privacy_gate"]["reasons"])
    md = r.markdown.read_text()
    assert "### Withheld generators and skipped classifiers" in md and "classifier synthetic@1" in md and "not trained" in md
    assert "withheld: 1 generator(s) treated as memorising" in r.summary()
    with pytest.raises(InputError, match="none of the 1 classifier"):
        evaluate(experiment["real"], tmp_path / "eval-none", classifier_dirs=[tmp_path / "clf-syn"], synthetic_dirs=sets,
                 progress=False, ctx=RunContext(track=False))
    exported = export_and_register(tmp_path / "models", classifier_dirs=[real_clf, tmp_path / "clf-syn"], evaluation_dir=r.path,
                                   register=False)
    assert set(exported.classifiers) == {"real"}


def test_the_run_command_prints_the_withheld_section_with_the_results(tmp_path: Path) -> None:
    """`lusynth run` ends with the report's Results section; a withheld generator changes what its
    verdicts mean, so that subsection is printed with it, and nothing after it."""
    from lusynth.cli.pipeline import _results_table

    (tmp_path / "report.md").write_text("# lusynth evaluation report\n\n- date\n\n## Results\n\n- (a) x\n\n"
                                        "### Withheld generators and skipped classifiers\n\n- gan a f=1: withheld: why\n\n"
                                        "### (a) question\n\n- verdict\n")
    text = _results_table(tmp_path)
    assert text.startswith("## Results") and "gan a f=1: withheld: why" in text and "### (a) question" not in text
    (tmp_path / "report.md").write_text("# r\n\n## Results\n\n- (a) x\n\n### (a) question\n\n- verdict\n")
    assert _results_table(tmp_path) == "## Results\n\n- (a) x"
