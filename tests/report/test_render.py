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
        "headline": {"fractions": [], "summary": ["fraction 1: synthetic only reaches 84% of the real AUC"]},
        "classifiers": [{"name": "real f=1 s=0", "dir": "/c", "val_threshold": 0.4, "roc": roc}],
        "audits": [], "privacy_gate": {"passed": None},
    }


def test_write_report_files_and_component_outputs(tmp_path: Path) -> None:
    res = _results()
    figs = {"learning_curve": plots.learning_curve(res["table"]),
            "dcr": plots.dcr_histogram(np.random.rand(50), np.random.rand(50) + 0.5, threshold=0.5, title="t")}
    art = write_report(tmp_path, res, figs)
    html = art.html.read_text()
    assert html.count("data:image/png;base64,") == 2 and "fraction 1: synthetic only" in html
    md = art.markdown.read_text()
    assert "| 0.5 | AUC 0.900 [0.850, 0.950]" in md and "![learning_curve](figures/learning_curve.png)" in md
    data = json.loads(art.json.read_text())  # strict JSON: NaN became null
    assert data["table"]["rows"][1]["cells"]["synthetic"]["auc"]["mean"] is None
    assert art.figures["dcr"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert art.roc == {"real f=1 s=0": res["classifiers"][0]["roc"]["frame"]}
    assert art.headline_metrics["auc_real_f0.5"] == 0.9 and "auc_synthetic_f1" not in art.headline_metrics


def test_headline_metrics_are_flat_finite_numbers() -> None:
    m = headline_metrics(_results())
    assert m and all(isinstance(v, float) and math.isfinite(v) for v in m.values())
