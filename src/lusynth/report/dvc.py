"""The evaluation as DVC metrics and plots: a flat ``metrics.json`` for ``dvc metrics show`` and
CSV files for ``dvc plots show`` (the learning curve and the ROC curves), read from report.json."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from lusynth.atomic import atomic_write_json
from lusynth.outputs import mark_output
from lusynth.report.render import JSON_FILE, headline_metrics


def export_for_dvc(results_dir: str | os.PathLike[str], metrics_path: str | os.PathLike[str], plots_dir: str | os.PathLike[str]) -> None:
    """Write ``metrics_path`` (JSON) and ``plots_dir/{learning_curve,roc}.csv`` from an evaluation."""
    report = json.loads((Path(results_dir) / JSON_FILE).read_text())
    atomic_write_json(metrics_path, headline_metrics(report))
    plots = Path(plots_dir)
    plots.mkdir(parents=True, exist_ok=True)
    mark_output(plots, "evaluate.plots_dir")  # a later evaluate may write here again
    with open(plots / "learning_curve.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["arm", "fraction", "auc", "auc_lo", "auc_hi"])
        for row in report["table"]["rows"]:
            for arm, cell in sorted(row["cells"].items()):
                w.writerow([arm, row["fraction"], cell["auc"]["mean"], cell["auc"]["lo"], cell["auc"]["hi"]])
    with open(plots / "roc.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["classifier", "fpr", "tpr"])
        for c in report["classifiers"]:
            roc = c["roc"]["frame"]
            for fpr, tpr in zip(roc["fpr"], roc["tpr"], strict=True):
                w.writerow([c["name"], fpr, tpr])
