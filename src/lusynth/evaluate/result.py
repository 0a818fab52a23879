"""The ``evaluate`` stage artefact: :class:`Evaluation`, an evaluation directory (the report, its
figures and the long table of patient scores).

Light on purpose (no torch): export-register, the CLI and a cached task read an evaluation without
the evaluation code (:mod:`lusynth.evaluate.run` writes it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from lusynth.errors import InputError
from lusynth.report.render import FIGURES_DIR, HTML_FILE, JSON_FILE, MARKDOWN_FILE, headline_metrics
from lusynth.report.verdicts import question_sentences

__all__ = ["SCORES_FILE", "Evaluation"]

#: the long table of patient-level scores (:func:`lusynth.evaluate.holdout.score_rows`), beside report.json
SCORES_FILE = "patient_scores.csv"


@dataclass
class Evaluation:
    """The evaluate stage's artefact: the report (``report.json`` + HTML/Markdown/figures)."""

    WHAT: ClassVar[str] = "an evaluation (the output directory of `lusynth evaluate`)"

    path: Path
    report: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Evaluation:
        """Read an evaluate output directory."""
        from lusynth.util import read_json

        path = Path(path)
        return cls(path=path, report=read_json(path / JSON_FILE, what="an evaluation", hint=f"run `lusynth evaluate --out {path}`"))

    def patient_scores(self) -> pd.DataFrame:
        """The long table: one row per classifier x test patient (columns
        :data:`lusynth.stats.scores.COLUMNS` and ``ratio``); every patient once per classifier of its fold."""
        path = self.path / SCORES_FILE
        if not path.is_file():
            raise InputError(f"{self.path}: no {SCORES_FILE}; re-run `lusynth evaluate --out {self.path}` with this lusynth")
        return pd.read_csv(path, dtype={"patient_id": str, "arm": str})

    @property
    def html(self) -> Path:
        return self.path / HTML_FILE

    @property
    def markdown(self) -> Path:
        return self.path / MARKDOWN_FILE

    @property
    def roc(self) -> dict[str, dict[str, list[float]]]:
        """Frame-level ROC curve per classifier name."""
        return {c["name"]: c["roc"]["frame"] for c in self.classifiers}

    @property
    def figures(self) -> dict[str, Path]:
        """The report's figures by name (``figures/<name>.png``)."""
        return {p.stem: p for p in sorted((self.path / FIGURES_DIR).glob("*.png"))}

    @property
    def headline_metrics(self) -> dict[str, float]:
        return headline_metrics(self.report)

    @property
    def privacy_passed(self) -> bool | None:
        return (self.report.get("privacy_gate") or {}).get("passed")

    @property
    def classifiers(self) -> list[dict[str, Any]]:
        """Per classifier: arm, fraction, seed, holdout metrics with CIs, ROC."""
        return list(self.report.get("classifiers", []))

    @property
    def audits(self) -> list[dict[str, Any]]:
        """Per generator (class x fraction): fidelity, privacy figures and the gate."""
        return list(self.report.get("audits", []))

    def reference_roc(self) -> dict[str, list[float]] | None:
        """The frame-level ROC of the real arm at the largest fraction (lowest seed), if any."""
        real = [c for c in self.classifiers if c["arm"] == "real"]
        return max(real, key=lambda c: (c["fraction"], -c["seed"]))["roc"]["frame"] if real else None

    def kfp_classification(self, arm: str, categories: Sequence[str] = ("negative", "positive")) -> dict[str, Any] | None:
        """What a KFP ``ClassificationMetrics`` artefact shows of ``arm`` (None when the arm was not
        evaluated): the frame-level holdout ROC and the confusion matrix at the classifier's own
        validation threshold (None in a report written before it held one), of the arm's classifier
        at the largest fraction (lowest seed). ``categories`` = (negative class, positive class);
        the matrix rows are true, columns predicted."""
        mine = [c for c in self.classifiers if c["arm"] == arm]
        if not mine:
            return None
        c = max(mine, key=lambda c: (c["fraction"], -c["seed"]))
        return {"classifier": c["name"], "threshold": float(c["val_threshold"]), "roc": c["roc"]["frame"],
                "categories": list(categories), "matrix": (c.get("confusion") or {}).get("val")}

    def summary(self) -> str:
        """The headline lines, the privacy gate and where the report is."""
        lines = question_sentences(self.report)
        held, skipped = self.report.get("withheld") or [], self.report.get("skipped_classifiers") or []
        if held:
            lines.append(f"withheld: {len(held)} generator(s) treated as memorising ({', '.join(w['name'] for w in held)}); {len(skipped)} classifier(s) "
                         "not trained; the estimates that need them use the other folds (see the report)")
        if self.privacy_passed is not None:
            lines.append(f"privacy gate: {'PASS' if self.privacy_passed else 'FAIL'}")
        lines.append(f"report: {self.html}")
        return "\n".join(lines)
