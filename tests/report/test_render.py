"""Report rendering: self-contained HTML, Markdown table, strict JSON, flat headline metrics; what a
reader sees (headers with direction, run metadata, figure titles in words, paths relative to the
run directory) and figures that show what they should (no blank band, no hidden curve)."""

import copy
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lusynth.report import plots
from lusynth.report.render import headline_metrics, render_html, render_markdown, write_report
from lusynth.report.words import figure_title

RUN = "/tmp/pytest-of-ci/run-7"


def _results() -> dict:
    cell = lambda v: {m: {"mean": v, "lo": v - 0.05, "hi": min(v + 0.05, 1), "std": 0.0, "n_runs": 2} for m in ("auc", "accuracy", "f1")}  # noqa: E731
    roc = {"frame": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.9, 1.0], "thresholds": [1.0, 0.5, 0.0]}}
    return {
        "run": {"date_utc": "2026-12-06 05:00:00 UTC", "git_commit": "0123abc", "mlflow_run_id": "r1", "pipeline_run_id": "p1",
                "frames_digest": "sha256:abc", "run_dir": RUN},
        "config": {"frames_dir": f"{RUN}/frames", "frames_digest": "sha256:abc", "params": {"n_bootstrap": 10}},
        "table": {"level": "patient", "threshold": "val", "metrics": ["auc", "accuracy", "f1"], "arms": ["real", "synthetic"],
                  "ci": 0.95, "rows": [{"fraction": 0.5, "cells": {"real": cell(0.9), "synthetic": cell(0.8)}},
                                       {"fraction": 1.0, "cells": {"real": cell(0.95), "synthetic": cell(float("nan"))}}]},
        "protocol": {"folds": 1, "repeats": 1, "gan_seeds": 1, "classifier_seeds": 2, "primary_endpoint": "patient-level auc",
                     "primary_fraction": 0.5, "margin": 0.05, "power": 0.8, "min_patients_per_class": 5},
        "n_patients": {"positive": 6, "negative": 7},
        "questions": [{"question": "b", "text": "can synthetic-only training replace real training (non-inferiority)?",
                       "arm": "synthetic", "baseline": "real", "fraction": 0.5, "metric": "auc", "endpoint": "patient-level auc",
                       "verdict": "inconclusive", "estimate": -0.1, "ci": [-0.3, 0.1], "ci_label": None,
                       "min_detectable_difference": 0.28, "p_value": 0.31, "hypothesis": "non-inferiority", "margin": 0.05,
                       "power": 0.12, "power_against": 0.0, "reason": "the 95% interval covers -0.05", "method": "m", "se": 0.1,
                       "df": None, "level": 0.95, "training_variance": "seeds", "n_splits": 1, "n_runs": 4, "n_resamples": 10,
                       "n_undefined": 0, "notes": [],
                       "secondary": [{"fraction": 1.0, "endpoint": "patient-level f1", "estimate": 0.02, "ci": [-0.1, 0.14],
                                      "ci_label": "too few patients", "p_value": 0.04, "p_value_holm": 0.08, "verdict": "inconclusive"}]}],
        "classifiers": [{"name": "real f=1 s=0", "dir": f"{RUN}/classifier/real@1", "val_threshold": 0.4, "roc": roc}],
        "audits": [], "privacy_gate": {"passed": None},
    }


def _audit() -> dict:
    return {"name": "gan consolidation f=0.5", "label": "consolidation", "fraction": 0.5, "gan_seed": 0, "fold": 0,
            "synthetic_dir": f"{RUN}/synthetic/0.5", "synthetic_digest": "sha256:def", "gan_dir": f"{RUN}/gan/consolidation@0.5",
            "fidelity": {"mmd_pixels": 0.0123, "nn1_pixels": 0.71, "fid_embed": 3.2, "kid_embed": 2e-6, "confidence": 0.6},
            "privacy": {"memorisation_rate": 0.0, "distance_mia_auc": 0.52, "median_dcr_synthetic": 5.0, "median_dcr_holdout": 6.0},
            "gate": {"passed": False, "decision": "insufficient_evidence", "reasons": [f"decided by {RUN}/audit/0.5: more patients"]},
            "fidelity_patient": {"skipped": "too few patients"}}


def test_write_report_files_and_component_outputs(tmp_path: Path) -> None:
    res = _results()
    figs = {"learning_curve": plots.learning_curve(res["table"]),
            "dcr": plots.dcr_histogram(np.random.rand(50), np.random.rand(50) + 0.5, threshold=0.5, title="t")}
    art = write_report(tmp_path, res, figs)
    html = art.html.read_text()
    assert html.count("data:image/png;base64,") == 2 and "INCONCLUSIVE: the 95% interval covers -0.05" in html
    md = art.markdown.read_text()
    assert "Test patients: 6 positive, 7 negative. Protocol: 1 fold(s) x 1 repeat(s), 1 GAN seed(s), 2 classifier seed(s)" in md
    # per question: verdict, effect with CI, patients per class, folds and seeds, margin, power
    assert "- verdict: **INCONCLUSIVE: the 95% interval covers -0.05**" in md
    assert "synthetic minus real at training fraction 0.5: -0.100, 95% CI [-0.300, 0.100]; one-sided p = 0.310" in md
    assert "- test patients per class: 6 positive, 7 negative" in md and "- folds and seeds: 1 fold(s) x 1 repeat(s); 1 GAN seed(s)" in md
    assert "non-inferiority with margin δ = 0.05" in md
    assert "minimum detectable difference at 80% power: 0.280" in md and "non-inferiority when the true difference is +0.000" in md
    assert "| b | 1 | patient-level f1 | +0.020 | [too few patients] | 0.040 | 0.080 | inconclusive |" in md
    assert "no clear difference" not in md and "p_not_better" not in art.json.read_text()
    # the per-arm table: a row per fraction x arm, a column per metric with its level and direction
    assert "| training fraction | arm | training runs | AUC (patient, ↑) | Accuracy (patient, ↑) | F1 (patient, ↑) |" in md
    assert "| 0.5 | real | 2 | 0.900 [0.850, 0.950] |" in md
    assert "![Learning curve: test AUC per arm by training fraction, with confidence intervals](figures/learning_curve.png)" in md
    data = json.loads(art.json.read_text())  # strict JSON: NaN became null
    assert data["table"]["rows"][1]["cells"]["synthetic"]["auc"]["mean"] is None
    assert art.figures["dcr"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert art.roc == {"real f=1 s=0": res["classifiers"][0]["roc"]["frame"]}
    assert art.headline_metrics["auc_real_f0.5"] == 0.9 and "auc_synthetic_f1" not in art.headline_metrics
    assert art.headline_metrics["qb_auc_diff_synthetic_vs_real_f0.5_lo"] == -0.3


def test_run_metadata_at_the_top_and_paths_relative_to_the_run_directory() -> None:
    res = _results()
    res["audits"] = [_audit()]
    png = plots.learning_curve(res["table"])
    md, html = render_markdown(res, {"samples_consolidation_f0.5": "figures/s.png"}), render_html(res, {"samples_consolidation_f0.5": png})
    top = md.split("## Results")[0]
    for line in ("- date (UTC): 2026-12-06 05:00:00 UTC", "- git commit: 0123abc", "- MLflow run (evaluate): r1",
                 "- MLflow pipeline run: p1", "- data: frame store digest: sha256:abc", "- run directory: run-7"):
        assert line in top
    assert html.index("0123abc") < html.index("<h2>Results</h2>")
    for text in (md, html):
        assert RUN not in text  # no absolute (temporary) path anywhere
    conf = md.split("## Configuration and data")[1]
    assert "- frames: frames (sha256:abc)" in conf and "classifier real f=1 s=0: classifier/real@1;" in conf
    assert "synthetic gan consolidation f=0.5: synthetic/0.5 (sha256:def); GAN gan/consolidation@0.5" in conf
    # readable headers with direction, the generator's figures under a heading in words
    assert "1-NN accuracy pixels (0.5 ideal)" in md and "MMD² pixels (↓)" in md and "near-copy rate (↓)" in md
    assert "### Generator of class consolidation, training fraction 0.5" in md
    assert "**Real test frames (top) and synthetic frames (bottom)**" in md and "samples_consolidation" not in md.replace("(figures/s.png)", "")
    assert "<figcaption>Real test frames (top) and synthetic frames (bottom)</figcaption>" in html
    assert "- not measured: gan consolidation f=0.5: too few patients" in md


def test_a_report_without_the_newer_fields_still_renders() -> None:
    """A report.json from before the metadata (or with fields another stage has not written yet) renders with what it has."""
    res = _results()
    for key in ("run", "protocol", "n_patients", "questions"):
        del res[key]
    res["table"]["rows"][0]["cells"]["real"]["auc"].pop("lo")
    md = render_markdown(res, {})
    assert "- date (UTC): not recorded" in md and "- data: frame store digest: sha256:abc" in md and "/data" not in md
    assert render_html(res, {}).endswith("</html>")


def test_per_fold_estimates_are_shown_when_the_report_has_them() -> None:
    res = _results()
    res["questions"][0]["per_fold"] = [{"fold": 0, "estimate": -0.12}, {"fold": 1, "repeat": 1, "estimate": 0.03}]
    assert "- per fold: fold 0: -0.120; fold 1 (repeat 1): +0.030" in render_markdown(res, {})


def test_figure_titles_are_words() -> None:
    assert figure_title("roc") == "ROC curves of every classifier on the test frames"
    assert figure_title("audit_membership_scores_b_lines_f1_g1") == "Privacy audit: membership score per patient, training vs unseen"
    assert figure_title("something_new") == "Something new"


def test_headline_metrics_are_flat_finite_numbers() -> None:
    m = headline_metrics(_results())
    assert m and all(isinstance(v, float) and math.isfinite(v) for v in m.values())


def _rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_sample_grid_has_no_blank_band() -> None:
    """The figure is as tall as its two grids: no run of empty rows longer than a frame's gap."""
    rng = np.random.default_rng(0)
    real, syn = rng.integers(0, 255, (16, 64, 64), dtype=np.uint8), rng.integers(0, 255, (16, 64, 64), dtype=np.uint8)
    img = _rgb(plots.sample_grid(real, syn, title="class b-lines, GAN fraction 1"))
    blank = (img > 245).all(axis=2).all(axis=1)  # rows with nothing but background
    longest = max((len(run) for run in "".join("1" if b else "0" for b in blank).split("0")), default=0)
    assert longest < 0.08 * img.shape[0], (longest, img.shape)


def test_roc_curves_that_coincide_stay_visible() -> None:
    """Two identical ROC curves: the one drawn first still shows (its colour along the curve, not only in the legend)."""
    pts = {"fpr": [0.0, 0.1, 0.3, 1.0], "tpr": [0.0, 0.6, 0.9, 1.0]}
    img = _rgb(plots.roc_curves({"real f=1 s=0": pts, "synthetic f=1 s=0": copy.deepcopy(pts)}))
    blue = np.array([0x1F, 0x77, 0xB4])
    # the first curve, half transparent over white
    seen = np.abs(img - (0.55 * blue + 0.45 * 255)).max(axis=2) < 25
    assert seen.sum() > 400, seen.sum()


def test_learning_curve_takes_report_json_cells() -> None:
    """Nulls (NaN in the JSON), missing bounds and 'too few patients' cells are drawn, not crashed on."""
    table = json.loads(json.dumps(_results()["table"]).replace("NaN", "null"))
    table["rows"][0]["cells"]["real"]["auc"]["too_few_patients"] = True
    table["rows"][1]["cells"]["real"]["auc"].pop("hi")
    assert plots.learning_curve(table)[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_undetectable_difference_beyond_the_range_is_said_in_words() -> None:
    """Two folds give a t reference with 1 df: the minimum detectable AUC difference can exceed 1, the
    largest possible; the verdict line says so instead of quoting 'a true difference of 5.759 or more'."""
    from lusynth.report.verdicts import question_sentences

    res = _results()
    res["questions"][0]["min_detectable_difference"] = 5.759
    (line,) = [s for s in question_sentences(res) if s.startswith("(b)")]
    assert "not even the largest possible difference (1) would be detected" in line and "true difference of 5.759" not in line
    res["questions"][0]["min_detectable_difference"] = 0.28
    (line,) = [s for s in question_sentences(res) if s.startswith("(b)")]
    assert "only a true difference of 0.280 or more would be detected" in line


def test_a_hundred_classifiers_get_a_legend_per_arm_and_family_not_per_classifier() -> None:
    """5 folds x 2 seeds x 2 families: the ROC figure stays as tall as a two-curve one (the legend
    has one entry per arm and family), instead of a legend a hundred lines long."""
    rng = np.random.default_rng(0)

    def curve() -> dict[str, list[float]]:
        x = np.sort(rng.uniform(0, 1, 8))
        return {"fpr": [0.0, *x, 1.0], "tpr": [0.0, *np.sqrt(x), 1.0]}

    names = [f"{arm} f={f} s=0 g={g} k={k}{fam}" for arm in ("real+synthetic", "synthetic") for f in (0.5, 1) for g in (0, 1)
             for k in range(5) for fam in ("", " fastgan")]
    names += [f"real f={f} s=0 k={k}" for f in (0.5, 1) for k in range(5)]
    assert len(names) > 12 * 5
    assert sorted({plots._roc_group(n) for n in names}) == ["real", "real+synthetic", "real+synthetic fastgan", "synthetic",
                                                             "synthetic fastgan"]
    many = _rgb(plots.roc_curves({n: curve() for n in names}))
    two = _rgb(plots.roc_curves({"real f=1 s=0": curve(), "synthetic f=1 s=0": curve()}))
    assert many.shape[0] <= 1.1 * two.shape[0], (many.shape, two.shape)


def test_fidelity_curves_show_the_near_copy_rate_its_limit_and_the_chosen_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A generator that gets closer to real only by copying shows it beside its fidelity: a third panel
    with the near-copy rate and the selection's limit, and the chosen step marked on every panel."""
    figs = []
    monkeypatch.setattr(plots, "_png", lambda fig: figs.append(fig) or b"")
    history = [{"step": s, "mmd_embed": 1 / (s + 1), "nn1_embed": 0.9, "memorisation_rate": m}
               for s, m in ((0, 0.0), (10, 0.02), (20, 0.4), (30, 0.9))]
    plots.fidelity_curves(history, title="t", chosen_step=10, max_memorisation_rate=0.05)
    plots.fidelity_curves([{k: v for k, v in h.items() if k != "memorisation_rate"} for h in history], title="old history")
    (a1, a2, a3), old = figs[0].axes, figs[1].axes
    assert len(old) == 2  # a history written before the near-copy rate was recorded: the two panels as before
    assert list(a3.lines[0].get_ydata()) == [0.0, 0.02, 0.4, 0.9]
    hlines = [float(ln.get_ydata()[0]) for ln in a3.lines[1:] if len(set(ln.get_ydata())) == 1 and ln.get_xdata()[0] == 0]
    assert 0.05 in hlines
    for ax in (a1, a2, a3):
        assert any(list(ln.get_xdata()) == [10, 10] for ln in ax.lines), ax.get_title()
    assert not any(list(ln.get_xdata()) == [10, 10] for ax in old for ln in ax.lines)
