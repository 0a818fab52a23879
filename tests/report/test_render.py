"""Report rendering: self-contained HTML, Markdown table, strict JSON, flat headline metrics."""

import json
import math
from pathlib import Path

import numpy as np

from lusynth.report import plots
from lusynth.report.render import headline_metrics, write_report


def _results() -> dict:
    cell = lambda v: {m: {"mean": v, "lo": v - 0.05, "hi": min(v + 0.05, 1), "std": 0.0, "n_seeds": 1} for m in ("auc", "accuracy", "f1")}  # noqa: E731
    roc = {"frame": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.9, 1.0], "thresholds": [1.0, 0.5, 0.0]}}
    return {
        "config": {"frames_dir": "/data/real", "frames_digest": "sha256:abc", "params": {"n_bootstrap": 10}},
        "table": {"level": "frame", "threshold": "val", "metrics": ["auc", "accuracy", "f1"], "arms": ["real", "synthetic"],
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
        "classifiers": [{"name": "real f=1 s=0", "dir": "/c", "val_threshold": 0.4, "roc": roc}],
        "audits": [], "privacy_gate": {"passed": None},
    }


def test_write_report_files_and_component_outputs(tmp_path: Path) -> None:
    res = _results()
    figs = {"learning_curve": plots.learning_curve(res["table"]),
            "dcr": plots.dcr_histogram(np.random.rand(50), np.random.rand(50) + 0.5, threshold=0.5, title="t")}
    art = write_report(tmp_path, res, figs)
    html = art.html.read_text()
    assert html.count("data:image/png;base64,") == 2 and "verdict: inconclusive" in html
    md = art.markdown.read_text()
    assert "Test patients: 6 positive, 7 negative. Protocol: 1 fold(s) x 1 repeat(s), 1 GAN seed(s), 2 classifier seed(s)" in md
    assert "- verdict: **inconclusive**" in md and "-0.100 [-0.300, 0.100] (95% CI), one-sided p = 0.310" in md
    assert "minimum detectable difference at 80% power: 0.280" in md and "non-inferiority when the true difference is +0.000" in md
    assert "| b | 1 | patient-level f1 | +0.020 | [too few patients] | 0.040 | 0.080 | inconclusive |" in md
    assert "no clear difference" not in md and "p_not_better" not in art.json.read_text()
    assert "| 0.5 | AUC 0.900 [0.850, 0.950]" in md and "![learning_curve](figures/learning_curve.png)" in md
    data = json.loads(art.json.read_text())  # strict JSON: NaN became null
    assert data["table"]["rows"][1]["cells"]["synthetic"]["auc"]["mean"] is None
    assert art.figures["dcr"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert art.roc == {"real f=1 s=0": res["classifiers"][0]["roc"]["frame"]}
    assert art.headline_metrics["auc_real_f0.5"] == 0.9 and "auc_synthetic_f1" not in art.headline_metrics
    assert art.headline_metrics["qb_auc_diff_synthetic_vs_real_f0.5_lo"] == -0.3


def test_headline_metrics_are_flat_finite_numbers() -> None:
    m = headline_metrics(_results())
    assert m and all(isinstance(v, float) and math.isfinite(v) for v in m.values())
