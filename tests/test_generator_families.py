"""Generator families as a fan-out dimension (issue 17): the grid, the keys, the per-family
verdicts and their multiplicity, the report's side-by-side table, and the registry's names."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lusynth.errors import InputError
from lusynth.experiment import ExperimentParams, plan_classifiers, plan_gans
from lusynth.keys import Cell, GanKey
from lusynth.stats.questions import Analysis, AnalysisParams
from tests.stats.simulation import mu_for_auc, simulate_table

TWO = ("dcgan", "fastgan")


def test_the_grid_trains_every_gan_once_per_family_and_the_real_arms_once() -> None:
    one = ExperimentParams(fractions=(0.5, 1.0), gan_seeds=(0, 1), folds=2)
    two = ExperimentParams(fractions=(0.5, 1.0), gan_seeds=(0, 1), folds=2, generators=TWO)
    gans1, gans2 = plan_gans(["a", "b"], [0.5, 1.0], one), plan_gans(["a", "b"], [0.5, 1.0], two)
    assert len(gans2) == 2 * len(gans1) == 2 * 2 * 2 * 2 * 2
    assert {k.generator for k in gans1} == {"dcgan"} and sorted({k.generator for k in gans2}) == list(TWO)
    # the DCGAN half of the two-family grid is the one-family grid: adding a family re-trains nothing
    assert {k for k in gans2 if k.generator == "dcgan"} == set(gans1)
    cells1, cells2 = plan_classifiers(one), plan_classifiers(two)
    real = [c for c in cells2 if c.arm in ("real", "real+aug")]
    assert real == [c for c in cells1 if c.arm in ("real", "real+aug")] and {c.generator for c in real} == {"dcgan"}
    syn1 = [c for c in cells1 if c.arm in ("real+synthetic", "synthetic")]
    syn2 = [c for c in cells2 if c.arm in ("real+synthetic", "synthetic")]
    assert len(syn2) == 2 * len(syn1) and {c for c in syn2 if c.generator == "dcgan"} == set(syn1)
    # every synthetic cell reads GANs that the grid trains: same fraction, seed, fold and family
    trained = {(k.fraction, k.gan_seed, k.fold, k.generator) for k in gans2}
    assert all((c.fraction, c.gan_seed, c.fold, c.generator) in trained for c in syn2)


@pytest.mark.parametrize(("generators", "match"), [
    (("dcgan", "dcgan"), "each family once"),
    (("dcgan", "stylegan"), r"experiment.generators=\('dcgan', 'stylegan'\): choose from dcgan, fastgan"),
    ((), "give at least one"),
])
def test_a_bad_generator_list_is_one_clear_error(generators: tuple[str, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):  # the CLI prints it as one line naming the profile and section
        ExperimentParams(generators=generators)


def test_keys_carry_the_family_and_records_from_before_it_are_dcgan() -> None:
    k = GanKey("a", 0.5, 1, 1, "fastgan")
    assert str(k) == "a@0.5~g1~k1~fastgan" and GanKey.from_dict(k.as_dict()) == k
    assert str(GanKey("a", 0.5, 1, 1)) == "a@0.5~g1~k1"  # the DCGAN's names are what they were
    assert GanKey.from_dict({"label": "a", "fraction": 0.5}) == GanKey("a", 0.5, 0, 0, "dcgan")
    assert Cell("real", 0.5, 0, generator="fastgan") == Cell("real", 0.5, 0)  # an arm without GANs has no family
    c = Cell("synthetic", 0.5, 0, generator="fastgan")
    assert str(c) == "synthetic@0.5#0~fastgan" and Cell.from_dict(c.as_dict()) == c
    assert Cell.from_dict({"arm": "synthetic", "fraction": 0.5, "seed": 0}).generator == "dcgan"
    with pytest.raises(InputError, match="not a generator family"):
        Cell("synthetic", 0.5, 0, generator="nope")


def _two_family_analysis(auc_fast: float, *, seed: int = 0, n_resamples: int = 200) -> Analysis:
    rng = np.random.default_rng(seed)
    mus = {"real": mu_for_auc(0.75)}
    fam = {"dcgan": {"real+synthetic": mu_for_auc(0.75), "synthetic": mu_for_auc(0.7)},
           "fastgan": {"real+synthetic": mu_for_auc(auc_fast), "synthetic": mu_for_auc(0.75)}}
    table = simulate_table(rng, n_per_class=20, mus=mus, folds=1, family_mus=fam)
    return Analysis(table, AnalysisParams(n_resamples=n_resamples, secondary_metrics=(), min_patients_per_class=1))


def test_each_question_is_answered_per_family_on_the_same_real_classifiers() -> None:
    a = _two_family_analysis(0.95)
    qs, skipped = a.questions()
    assert not skipped
    assert [(q["question"], q["generator"]) for q in qs] == [("a", "dcgan"), ("a", "fastgan"), ("b", "dcgan"), ("b", "fastgan")]
    by = {(q["question"], q["generator"]): q for q in qs}
    # a large true gain for FastGAN's arm only: its verdict, not the DCGAN's
    assert by[("a", "fastgan")]["verdict"] == "superior" and by[("a", "dcgan")]["verdict"] != "superior"
    assert by[("a", "fastgan")]["estimate"] > by[("a", "dcgan")]["estimate"] + 0.1
    # two families: each primary at the Bonferroni level, secondaries at the nominal one
    assert a.primary_level() == pytest.approx(0.975) and all(q["level"] == pytest.approx(0.975) for q in qs)
    assert a.protocol()["generators"] == list(TWO)
    table = a.table_cells()
    assert table["arms"] == ["real", "real+synthetic [dcgan]", "real+synthetic [fastgan]", "synthetic [dcgan]", "synthetic [fastgan]"]
    # one family: the level and the names are the paper's
    rng = np.random.default_rng(1)
    one = Analysis(simulate_table(rng, n_per_class=12, mus={"real": 0.5, "synthetic": 0.5}, folds=2),
                   AnalysisParams(n_resamples=50, secondary_metrics=(), min_patients_per_class=1))
    assert one.primary_level() == 0.95 and one.table_cells()["arms"] == ["real", "synthetic"]
    assert [q["generator"] for q in one.questions()[0]] == ["dcgan"]


@pytest.mark.slow
def test_comparing_two_null_families_keeps_the_chance_of_any_false_superiority_at_the_nominal_rate() -> None:
    """Simulation with a known answer: neither family helps (every arm's true AUC 0.75). A reader who
    takes the best-looking family would be misled when *either* is called superior; with the
    Bonferroni level that happens in at most (1 - 0.95) / 2 = 2.5 % of experiments (+ Monte Carlo error)."""
    n, any_superior = 400, 0
    for i in range(n):
        qs, _ = _two_family_analysis(0.75, seed=100 + i, n_resamples=100).questions()
        any_superior += any(q["question"] == "a" and q["verdict"] == "superior" for q in qs)
    rate = any_superior / n
    se = (0.025 * 0.975 / n) ** 0.5
    assert rate <= 0.025 + 2.5 * se, f"family-wise false superiority {rate:.3f} over {n} null experiments"


def test_the_report_puts_the_families_side_by_side() -> None:
    from lusynth.report.render import headline_metrics
    from lusynth.report.tables import family_rows
    from lusynth.report.verdicts import question_sentences

    results = {
        "protocol": {"generators": ["dcgan", "fastgan"], "primary_fraction": 0.5, "primary_level": 0.975},
        "questions": [
            {"question": "a", "generator": "dcgan", "arm": "real+synthetic", "baseline": "real", "fraction": 0.5, "metric": "auc",
             "endpoint": "patient-level auc", "verdict": "inconclusive", "estimate": -0.02, "ci": [-0.2, 0.1], "p_value": 0.6,
             "level": 0.975, "hypothesis": "superiority", "margin": 0.0, "min_detectable_difference": 0.3},
            {"question": "a", "generator": "fastgan", "arm": "real+synthetic", "baseline": "real", "fraction": 0.5, "metric": "auc",
             "endpoint": "patient-level auc", "verdict": "superior", "estimate": 0.08, "ci": [0.01, 0.15], "p_value": 0.01,
             "level": 0.975, "hypothesis": "superiority", "margin": 0.0, "min_detectable_difference": 0.05,
             "secondary": [{"fraction": 1.0, "metric": "auc", "verdict": "inconclusive", "estimate": 0.01},
                           {"fraction": 1.0, "metric": "f1", "verdict": "superior", "estimate": 0.2}]},
        ],
        "audits": [
            {"name": "gan a f=0.5", "label": "a", "fraction": 0.5, "generator": "dcgan", "gate": {"decision": "pass", "passed": True},
             "fidelity": {"nn1_embed": 0.8, "sharpness": 9.0, "sharpness_holdout": 10.0}, "privacy": {}},
            {"name": "gan b f=0.5", "label": "b", "fraction": 0.5, "generator": "dcgan", "gate": {"decision": "fail", "passed": False},
             "fidelity": {"nn1_embed": 0.9, "sharpness": 4.0, "sharpness_holdout": 5.0}, "privacy": {}},
            {"name": "gan a f=0.5 fastgan", "label": "a", "fraction": 0.5, "generator": "fastgan",
             "gate": {"decision": "insufficient_evidence", "passed": False}, "fidelity": {"nn1_embed": 0.6}, "privacy": {},
             "patient_audit": {"copy_rate": {"copy_rate": 0.5, "lo": 0.4, "hi": 0.6}},
             "fidelity_patient": {"embedding": {"synthetic": {"nn1_accuracy": 0.75}, "real_floor": {"nn1_accuracy": 0.8}}}},
            {"name": "gan a f=1 fastgan", "label": "a", "fraction": 1.0, "generator": "fastgan",
             "gate": {"decision": "pass", "passed": True}, "fidelity": {"nn1_embed": 0.7}, "privacy": {},
             "fidelity_patient": {"embedding": {"synthetic": {"nn1_accuracy": 0.9}, "real_floor": {"nn1_accuracy": 0.6}},
                                  "pixels": {"synthetic": {"nn1_accuracy": 0.1}, "real_floor": {"nn1_accuracy": 0.1}}}},
            {"name": "gan b f=1 fastgan", "label": "b", "fraction": 1.0, "generator": "fastgan",
             "gate": {"decision": "pass", "passed": True}, "fidelity": {"nn1_embed": 0.7}, "privacy": {},
             "patient_audit": {"copy_rate": {"copy_rate": 0.02, "lo": 0.0, "hi": 0.05}},
             "fidelity_patient": {"embedding": {"synthetic": {"nn1_accuracy": 0.7}, "real_floor": {"nn1_accuracy": 0.8}}}},
        ],
    }
    from lusynth.report.verdicts import protocol_line

    line = protocol_line({**results, "protocol": {**results["protocol"], "primary_endpoint": "patient-level auc", "folds": 2}})
    assert "Bonferroni level 97.5%" in line and "Primary endpoint: patient-level auc at fraction 0.5" in line and "{" not in line
    header, body = family_rows(results)
    assert header[0] == "generator family"
    # copy rate: the patient audits' mean over the row's generators that have one (one of the two at fraction 1)
    # fidelity: patient-level 1-NN in the embedding (not pixels), mean over the row's generators, beside the real floor's
    # fine detail: the mean of each generator's synthetic / real-test sharpness ratio ((0.9 + 0.8) / 2), "-" without one
    assert header[-3] == "copy rate, unfiltered (↓)" and header[-1] == "fine detail, synthetic ÷ real (1 = real)"
    assert body == [["DCGAN", "0.5", "INCONCLUSIVE -0.020", "", "1 pass, 1 FAIL", "-", "-", "0.85"],
                    ["DCGAN", "1", "", "", "-", "-", "-", "-"],
                    ["FastGAN-lite", "0.5", "SUPERIOR +0.080", "", "1 insufficient evidence", "0.500", "0.750 / 0.800", "-"],
                    ["FastGAN-lite", "1", "inconclusive +0.010 (secondary)", "", "2 pass", "0.020", "0.800 / 0.700", "-"]]
    sentences = question_sentences(results)
    assert sentences[0].startswith("(a) real+synthetic [DCGAN] vs real") and sentences[1].startswith("(a) real+synthetic [FastGAN-lite] vs real")
    results["table"] = {"rows": [{"fraction": 0.5, "cells": {"real+synthetic [fastgan]": {"auc": {"mean": 0.7}}}}]}
    flat = headline_metrics(results)
    # names an MLflow server takes (the two-family demo's evaluate once failed on "auc_real_plus_synthetic_[dcgan]_f0.5")
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", k) for k in flat), sorted(flat)
    assert flat["auc_real_plus_synthetic_fastgan_f0.5"] == 0.7
    # one metric per family (a second family must not overwrite the first's)
    assert flat["qa_auc_diff_real_plus_synthetic_vs_real_f0.5"] == -0.02 and flat["qa_auc_diff_real_plus_synthetic_fastgan_vs_real_f0.5"] == 0.08


def test_registry_and_export_name_a_family_other_than_the_dcgan() -> None:
    from lusynth.export.stage import generator_id
    from lusynth.registry.gate import RegistryNames

    names = RegistryNames()
    assert names.generator("consolidation") == names.generator("consolidation", "dcgan") == "lusynth-lus-generator-consolidation"
    assert names.generator("consolidation", "fastgan") == "lusynth-lus-generator-fastgan-consolidation"
    assert generator_id(GanKey("consolidation", 1.0)) == "consolidation"
    assert generator_id(GanKey("consolidation", 1.0, generator="fastgan")) == "fastgan-consolidation"


def test_the_family_comparison_is_reported_tracked_and_named_apart_from_each_family() -> None:
    """(c) FastGAN-lite's real+synthetic minus the DCGAN's: a sentence, a section, secondary rows,
    metrics and tags of its own; and (a)/(b) of the two families no longer share one MLflow name."""
    from lusynth.evaluate.run import tracked_results
    from lusynth.report.render import headline_metrics
    from lusynth.report.tables import family_rows
    from lusynth.report.verdicts import question_sentences, secondary_rows

    a = _two_family_analysis(0.6, n_resamples=100)
    stats = a.report()
    (c,) = stats["comparisons"]
    assert (c["question"], c["generator"], c["baseline_generator"], c["arm"], c["baseline"]) == ("c", "fastgan", "dcgan", "real+synthetic",
                                                                                                 "real+synthetic")
    assert c["estimate"] < -0.05 and c["verdict"] in ("inferior", "inconclusive")
    # its secondaries: the other fraction(s) are absent here (one fraction), the synthetic arm at the primary one
    assert [(s["arm"], s["fraction"], s["metric"]) for s in c["secondary"]] == [("synthetic", 0.5, "auc")]
    results = {"protocol": stats["protocol"], "n_patients": stats["n_patients"], "questions": stats["questions"], "comparisons": stats["comparisons"],
               "skipped_questions": [], "skipped_comparisons": [], "table": stats["table"], "audits": []}
    sentences = question_sentences(results)
    assert len(sentences) == 5 and sentences[-1].startswith("(c) real+synthetic [FastGAN-lite] vs real+synthetic [DCGAN], patient-level auc")
    assert "non-inferiority, margin 0.05" in sentences[-1]
    flat = headline_metrics(results)
    assert flat["qc_auc_diff_real_plus_synthetic_fastgan_vs_real_plus_synthetic_dcgan_f0.5"] == pytest.approx(c["estimate"])
    _, rows = secondary_rows(results)
    assert ["c: synthetic [FastGAN-lite] − synthetic [DCGAN]", "0.5"] == rows[-1][:2]
    header, body = family_rows(results)
    assert header[4] == "(c) real+synthetic vs DCGAN's" and [r[4] for r in body] == ["reference", f"{c['verdict'].upper()} {c['estimate']:+.3f}"]
    metrics, tags = tracked_results(results)
    # one tag and one metric per question and family: the FastGAN verdict does not overwrite the DCGAN's
    assert {"lusynth.verdict.qa", "lusynth.verdict.qa.fastgan", "lusynth.verdict.qb", "lusynth.verdict.qb.fastgan",
            "lusynth.verdict.qc.fastgan"} <= set(tags)
    assert tags["lusynth.verdict.qc.fastgan"] == sentences[-1]
    assert metrics["qa_auc_diff_real_plus_synthetic_vs_real_f0.5"] != metrics["qa_auc_diff_real_plus_synthetic_fastgan_vs_real_f0.5"]
    assert "qc.fastgan real+synthetic vs real+synthetic dcgan (f0.5)" in tags["lusynth.verdicts"]


def test_a_run_whose_frames_do_not_fit_a_family_is_refused_before_anything_starts(phantom_store, tmp_path, capsys) -> None:
    """ingest.image_size against every family's needs (gan.fastgan_downscale; the family's sizes):
    checked when the run's parameters are resolved, so `lusynth run`, a KFP submission and DVC's
    params.yaml fail in one line before ingest, not at the first GAN task."""
    from lusynth.cli import main
    from lusynth.experiment import run_overrides
    from lusynth_pipelines.dvc import render_params

    too_small = {"experiment": {"generators": "dcgan,fastgan"}, "gan": {"fastgan_downscale": 4}}
    with pytest.raises(InputError, match=r"profile demo: ingest.image_size=64 with experiment.generators=dcgan,fastgan: "
                                         r"gan.fastgan_downscale=4: 64x64 frames would leave FastGAN-lite's G and D 16x16"):
        run_overrides("demo", too_small)
    run_overrides("demo", {**too_small, "ingest": {"image_size": 128}})  # 32x32 work size: fine
    run_overrides("demo", {"gan": {"fastgan_downscale": 4}})  # the DCGAN alone ignores the FastGAN parameter
    with pytest.raises(InputError, match=r"ingest.image_size=32 with experiment.generators=dcgan: image size 32: the dcgan family "
                                         r"supports \[64, 128, 256\]"):
        run_overrides("demo", {"ingest": {"image_size": 32}})
    with pytest.raises(InputError, match=r"params.yaml: .*gan.fastgan_downscale=4"):
        render_params(profile="demo", overrides=too_small)

    # a run submitted from the KFP UI skips the CLI: the pipeline's GAN plan checks the store's frames before fanning out
    from types import SimpleNamespace

    from lusynth_components.plan import plan_gans as plan_component

    ok = plan_component.python_func(frames=SimpleNamespace(path=str(phantom_store)), profile="demo",
                                    overrides={"experiment": {"generators": ["dcgan", "fastgan"], "folds": 1}, "gan": {"fastgan_downscale": 2}})
    assert {k["key"]["generator"] for k in ok} == {"dcgan", "fastgan"}
    with pytest.raises(InputError, match=rf"{phantom_store}: image size 64 with experiment.generators=dcgan,fastgan: gan.fastgan_downscale=4"):
        plan_component.python_func(frames=SimpleNamespace(path=str(phantom_store)), profile="demo",
                                   overrides={"experiment": {"generators": ["dcgan", "fastgan"]}, "gan": {"fastgan_downscale": 4}})

    out = tmp_path / "run"
    rc = main(["run", "--out", str(out), "--set", "experiment.generators=dcgan,fastgan", "--set", "gan.fastgan_downscale=4"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "gan.fastgan_downscale=4" in err and "ingest.image_size=64" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_a_family_comparison_states_the_compute_each_family_had() -> None:
    """(c)'s sentence says at which budget the families were compared: the median training seconds (and
    TFLOP) of the family's GANs at the question's fraction over the DCGAN's, flagged when they differ by
    more than EQUAL_BUDGET (a family given twice the compute may win by the compute alone)."""
    from lusynth.report.verdicts import EQUAL_BUDGET, budget_ratios, question_sentences

    stats = _two_family_analysis(0.6, n_resamples=100).report()
    (c,) = stats["comparisons"]

    def gan(family: str, seconds: float, tflop: float, fraction: float = 0.5) -> dict:
        return {"name": f"gan {family}", "label": "a", "fraction": fraction, "generator": family,
                "training": {"steps": 500, "epochs": 10, "tflop": tflop, "seconds": seconds}}

    def sentence(audits: list[dict]) -> str:
        results = {"protocol": stats["protocol"], "n_patients": stats["n_patients"], "questions": stats["questions"],
                   "comparisons": stats["comparisons"], "skipped_questions": [], "skipped_comparisons": [], "audits": audits}
        return question_sentences(results)[-1]

    dcgans = [gan("dcgan", s, 1.0) for s in (30.0, 34.0, 40.0)] + [gan("dcgan", 1000.0, 9.0, fraction=1.0)]  # another fraction: not counted
    unequal = [gan("fastgan", s, 0.9) for s in (68.0, 70.0, 80.0)]
    assert budget_ratios({"audits": dcgans + unequal}, "fastgan", "dcgan", c["fraction"]) == pytest.approx({"seconds": 70 / 34, "tflop": 0.9})
    assert sentence(dcgans + unequal).endswith("; AT UNEQUAL COMPUTE: the FastGAN-lite GANs trained a median 2.1x the DCGAN's seconds "
                                               "and 0.9x its TFLOP (gan.fastgan_step_share sets FastGAN-lite's share of the DCGAN's steps).")
    equal = [gan("fastgan", s, 0.45) for s in (33.0, 36.0, 35.0)]
    assert 1 / EQUAL_BUDGET < 35 / 34 < EQUAL_BUDGET
    assert sentence(dcgans + equal).endswith("; at about equal compute: the FastGAN-lite GANs trained a median 1x the DCGAN's seconds "
                                             "and 0.45x its TFLOP.")
    # no recorded cost (GANs trained before it was recorded): the sentence says nothing of the budget
    assert "compute" not in sentence([]) and sentence([]).startswith("(c) ")
