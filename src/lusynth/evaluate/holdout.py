"""Holdout evaluation of trained classifiers: predictions, metrics with CIs, paired comparisons.

Only the real ``holdout`` split is used: patients that no GAN and no classifier saw. Metrics are
computed at three levels -- frame, clip (``video_id``) and patient -- where a clip or patient
gets the mean probability of its frames and is positive when any of its frames is. Each level is
reported at two thresholds: ``0.5`` (the paper's argmax) and ``val`` (the classifier's own
threshold chosen on validation, applied to the frame or mean probability). CIs come from a
patient-level bootstrap; with the same seed every classifier sees the same resamples, so the
differences between two classifiers are paired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lusynth.classifier.train import LoadedClassifier
from lusynth.data.framestore import FrameStore
from lusynth.errors import InputError
from lusynth.evaluate.params import LEVELS, THRESHOLDS, EvaluateParams
from lusynth.metrics.classification import (
    BootstrapCI,
    aggregate_groups,
    bootstrap_metrics,
    difference_from_replicates,
    roc_points,
)


@dataclass
class HoldoutPrediction:
    """One classifier's holdout probabilities, with the grouping needed for every level."""

    name: str
    arm: str
    fraction: float
    seed: int
    val_threshold: float
    y: np.ndarray
    prob: np.ndarray
    patient_id: np.ndarray
    video_id: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    ratio: float = 0.0  # synthetic frames per real frame (real+synthetic)
    gan_seed: int = 0  # the GAN seed whose synthetic set it trained on (synthetic arms)
    fold: int = 0  # the outer fold

    def level(self, level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, probabilities, bootstrap cluster per row) at ``frame``, ``clip`` or ``patient`` level."""
        if level == "frame":
            return self.y, self.prob, self.patient_id
        if level == "clip":
            # a clip's cluster is its patient: clips of one patient are resampled together
            key = np.char.add(np.char.add(self.patient_id.astype(str), "\x00"), self.video_id.astype(str))
            ids, y, p = aggregate_groups(self.y, self.prob, key)
            return y, p, np.array([k.split("\x00")[0] for k in ids])
        if level == "patient":
            ids, y, p = aggregate_groups(self.y, self.prob, self.patient_id)
            return y, p, ids
        raise ValueError(f"level {level!r}: choose one of {', '.join(LEVELS)}")


def classifier_name(arm: str, fraction: float, seed: int, *, ratio: float = 0.0, gan_seed: int = 0, fold: int = 0) -> str:
    """Stable display name of one classifier of the grid (ratio, GAN seed and fold when not 0)."""
    extra = (f" r={ratio:g}" if ratio else "") + (f" g={gan_seed}" if gan_seed else "") + (f" k={fold}" if fold else "")
    return f"{arm} f={fraction:g} s={seed}{extra}"


def holdout_indices(store: FrameStore) -> np.ndarray:
    """Rows of the real holdout split; both classes are needed for AUC."""
    idx = store.indices(split="holdout")
    if len(idx) == 0:
        raise InputError(f"{store.path}: no holdout frames; re-run ingest with a holdout share")
    if len(np.unique(store.labels_as_int(idx))) < 2:
        raise InputError(f"{store.path}: the holdout holds a single class; AUC needs both (re-run ingest with more patients)")
    return idx


def predict_holdout(store: FrameStore, clf: LoadedClassifier, *, batch_size: int = 256) -> HoldoutPrediction:
    """Positive-class probability of every holdout frame."""
    if clf.config.image_size != store.image_size:
        raise InputError(f"{clf.path}: classifier takes {clf.config.image_size}x{clf.config.image_size} frames, the store has {store.image_size}; evaluate on the store it was trained from")
    if list(clf.classes) != list(store.classes):
        raise InputError(f"{clf.path}: classifier classes {clf.classes} differ from the store's {store.classes}")
    trained_on = (clf.meta.get("data") or {}).get("real_digest")
    if trained_on and trained_on != store.digest:
        raise InputError(
            f"{clf.path}: trained on frame store {trained_on}, but {store.path} is {store.digest}; another data version "
            "may share patients with this holdout: evaluate on the store the classifier was trained from"
        )
    idx = holdout_indices(store)
    m = store.manifest.iloc[idx]
    cell = clf.cell
    return HoldoutPrediction(
        name=classifier_name(cell.arm, cell.fraction, cell.seed, ratio=cell.ratio, gan_seed=cell.gan_seed, fold=cell.fold),
        arm=cell.arm, fraction=cell.fraction, seed=cell.seed, ratio=cell.ratio, gan_seed=cell.gan_seed, fold=cell.fold,
        val_threshold=clf.threshold, y=store.labels_as_int(idx, positive=clf.positive_class),
        prob=clf.predict_proba(np.asarray(store.frames[idx]), batch_size=batch_size),
        patient_id=m["patient_id"].astype(str).to_numpy(), video_id=m["video_id"].astype(str).to_numpy(),
        meta={"dir": str(clf.path), "hyperparams": clf.meta.get("hyperparams"), "val_auc": clf.meta.get("val_auc"),
              "threshold_rule": clf.meta.get("threshold_rule"), "mlflow_run_id": clf.meta.get("mlflow_run_id")},
    )


#: columns of the long table of patient-level scores (one row per classifier x test patient)
SCORE_COLUMNS = ("fold", "repeat", "arm", "ratio", "fraction", "gan_seed", "classifier_seed", "patient_id", "label", "score")


def patient_scores(preds: Sequence[HoldoutPrediction]) -> pd.DataFrame:
    """The long table the statistics read: per classifier and test patient, the patient's label
    (positive when any of its frames is) and score (mean frame probability), keyed by
    fold, repeat, arm, ratio, fraction, GAN seed and classifier seed."""
    rows = []
    for p in preds:
        y, score, ids = p.level("patient")
        rows.append(pd.DataFrame({"fold": p.fold, "repeat": 0, "arm": p.arm, "ratio": p.ratio, "fraction": p.fraction,
                                  "gan_seed": p.gan_seed, "classifier_seed": p.seed, "patient_id": ids, "label": y, "score": score}))
    if not rows:
        return pd.DataFrame({c: [] for c in SCORE_COLUMNS})
    return pd.concat(rows, ignore_index=True)[list(SCORE_COLUMNS)]


def _threshold(pred: HoldoutPrediction, which: str) -> float:
    return 0.5 if which == "0.5" else pred.val_threshold


def bootstrap_all(pred: HoldoutPrediction, params: EvaluateParams) -> dict[tuple[str, str], BootstrapCI]:
    """Bootstrap metrics for every (level, threshold) of one classifier."""
    out = {}
    for level in LEVELS:
        y, p, groups = pred.level(level)
        for which in THRESHOLDS:
            out[(level, which)] = bootstrap_metrics(y, p, groups, threshold=_threshold(pred, which),
                                                    n_resamples=params.n_bootstrap, ci=params.ci, seed=params.seed)
    return out


def metrics_json(boot: dict[tuple[str, str], BootstrapCI]) -> dict[str, dict[str, Any]]:
    """{level: {threshold: {metric: {value, lo, hi}}}} for the JSON report."""
    out: dict[str, dict[str, Any]] = {}
    for (level, which), ci in boot.items():
        out.setdefault(level, {})[which] = ci.as_dict()
    return out


def roc_json(pred: HoldoutPrediction) -> dict[str, dict[str, list[float]]]:
    """ROC points per level (fpr, tpr, thresholds)."""
    out = {}
    for level in LEVELS:
        y, p, _ = pred.level(level)
        out[level] = roc_points(y, p)
    return out


def paired_comparisons(
    preds: Sequence[HoldoutPrediction],
    boots: dict[str, dict[tuple[str, str], BootstrapCI]],
    params: EvaluateParams,
    *,
    baseline: str = "real",
) -> list[dict[str, Any]]:
    """For each fraction and seed: every other arm minus ``baseline`` (paired bootstrap CIs)."""
    by_key = {(p.arm, p.fraction, p.seed): p for p in preds}
    out = []
    for p in sorted(preds, key=lambda q: (q.fraction, q.seed, q.arm)):
        if p.arm == baseline or (baseline, p.fraction, p.seed) not in by_key:
            continue
        base = by_key[(baseline, p.fraction, p.seed)]
        for level in LEVELS:
            for which in THRESHOLDS:
                diff = difference_from_replicates(boots[p.name][(level, which)], boots[base.name][(level, which)], ci=params.ci)
                out.append({"fraction": p.fraction, "seed": p.seed, "arm": p.arm, "baseline": baseline,
                            "level": level, "threshold": which, "diff": diff})
    return out
