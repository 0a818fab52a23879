"""The ``train-classifier`` stage artefact: :class:`ClassifierRun`, what one classifier directory says
about itself (``classifier.json``).

Light on purpose (no torch): the stage table, a cached task and the steps that only read records
load it without the training code (:mod:`lusynth.classifier.train` writes the directory,
:func:`lusynth.classifier.train.load_classifier` reads its weights).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lusynth.atomic import dumps_json
from lusynth.keys import Cell

__all__ = ["META_FILE", "ClassifierRun"]

META_FILE = "classifier.json"


@dataclass
class ClassifierRun:
    """The train-classifier stage's artefact: one trained classifier of the grid and its record
    (``classifier.json``); the weights (``model.pt``) are read by :func:`lusynth.classifier.train.load_classifier`."""

    WHAT: ClassVar[str] = "a classifier directory (the output of `lusynth train-classifier`)"

    path: Path
    meta: dict[str, Any] = field(repr=False)

    @property
    def cell(self) -> Cell:
        return Cell.from_dict(self.meta)

    @property
    def arm(self) -> str:
        return self.cell.arm

    @property
    def fraction(self) -> float:
        return self.cell.fraction

    @property
    def seed(self) -> int:
        return self.cell.seed

    @property
    def skipped(self) -> str | None:
        """Why this cell was not trained (its synthetic frames were withheld), or None."""
        return self.meta.get("skipped") or None

    @property
    def val_auc(self) -> float:
        return float(self.meta.get("val_auc", float("nan")))

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", float("nan")))

    @property
    def run_id(self) -> str | None:
        return self.meta.get("mlflow_run_id")

    def save(self, out_dir: str | os.PathLike[str]) -> None:
        """Write ``classifier.json`` into ``out_dir`` (a stage's temporary output directory)."""
        (Path(out_dir) / META_FILE).write_text(dumps_json(self.meta))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClassifierRun:
        """Read a train-classifier output directory's record."""
        from lusynth.util import read_json

        path = Path(path)
        meta = read_json(path / META_FILE, what="a classifier directory", hint=f"run `lusynth train-classifier --out {path}`")
        return cls(path=path, meta=meta)

    def summary(self) -> str:
        """One line for a terminal."""
        if self.skipped:
            return f"classifier {self.cell}: SKIPPED, not trained: {self.skipped}; written: {self.path}"
        return (f"classifier {self.cell}: hyper-parameters {self.meta.get('hyperparams')}, val AUC {self.val_auc:.3f}, "
                f"threshold {self.threshold:.3f}; written: {self.path}")

    def kfp_metrics(self) -> dict[str, float]:
        """Numbers for the KFP UI."""
        return {k: float(self.meta[k]) for k in ("val_auc", "val_loss", "threshold") if isinstance(self.meta.get(k), (int, float))}
