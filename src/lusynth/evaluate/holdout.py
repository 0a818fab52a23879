"""Holdout predictions of trained classifiers, per-classifier metrics, and the score table.

Only the test patients of each classifier's outer split are scored (``FrameStore.view(fold,
"test")``: a fold's test patients under K-fold cross-validation, the holdout split of a single
split), so every patient gets one out-of-fold prediction per classifier of the grid. Two levels:

* **frame**: every frame, at ``0.5`` (the paper's argmax) and at ``val`` (the classifier's frame
  threshold, chosen on validation frames); patient-bootstrap CIs. Descriptive: frames of one
  patient are not independent, so no test uses them.
* **patient**: the level of every test (:mod:`lusynth.stats.scores` for the rule: label = any clip
  positive, score = the most suspicious clip's mean frame probability), at a *patient-level*
  threshold the classifier chose on its fold's inner validation patients' scores with its own rule
  (``patient_threshold`` in classifier.json) -- never the frame threshold reused on patient scores.

:func:`score_rows` turns a classifier into rows of the long score table (lusynth.stats.scores);
its outer fold, repeat and GAN seed come from the classifier's cell (``fold`` indexes repeat x
fold, :meth:`FrameStore.split_of`) and record (``gan_seed``; 0: one GAN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lusynth.classifier.params import SYNTHETIC_ARMS
from lusynth.classifier.train import LoadedClassifier
from lusynth.data.framestore import FrameStore
from lusynth.errors import InputError
from lusynth.evaluate.params import EvaluateParams
from lusynth.keys import family_tag
from lusynth.metrics.classification import METRICS, bootstrap_metrics, percentile_interval, roc_points
from lusynth.stats.bootstrap import run_metrics, stratified_weights
from lusynth.stats.scores import patient_scores, patient_threshold


@dataclass
class HoldoutPrediction:
    """One classifier's test-patient frame probabilities and patient scores (threshold from validation patients)."""

    name: str
    arm: str
    fraction: float
    seed: int
    val_threshold: float  # frame level, from classifier.json
    y: np.ndarray
    prob: np.ndarray
    patient_id: np.ndarray
    video_id: np.ndarray
    patients: pd.DataFrame  # patient_id, label, score (test patients)
    patient_threshold: float  # chosen on the validation patients' scores
    fold: int = 0
    repeat: int = 0
    gan_seed: int = 0
    generator: str = ""  # the family of the GANs a synthetic arm read; "" for an arm without GANs
    ratio: float = 0.0  # synthetic frames per real frame (real+synthetic)
    split: int = 0  # the cell's outer split index (repeat x folds + fold)
    meta: dict[str, Any] = field(default_factory=dict)


def classifier_name(arm: str, fraction: float, seed: int, *, ratio: float = 0.0, gan_seed: int = 0, fold: int = 0,
                    generator: str = "") -> str:
    """Stable display name of one classifier of the grid (ratio, GAN seed and fold when not 0, the family when not the DCGAN)."""
    extra = ((f" r={ratio:g}" if ratio else "") + (f" g={gan_seed}" if gan_seed else "") + (f" k={fold}" if fold else "")
             + family_tag(generator, " "))
    return f"{arm} f={fraction:g} s={seed}{extra}"


def test_indices(store: FrameStore, fold: int = 0) -> np.ndarray:
    """Rows of outer split ``fold``'s test patients; both classes are needed for AUC."""
    idx = store.view(fold, "test")
    if len(idx) == 0:
        raise InputError(f"{store.path}: no test frames in fold {fold}; re-run ingest with more patients")
    if len(np.unique(store.labels_as_int(idx))) < 2:
        raise InputError(f"{store.path}: the test patients of fold {fold} hold a single class; AUC needs both (re-run ingest with more patients)")
    return idx


def _check_compatible(store: FrameStore, clf: LoadedClassifier) -> None:
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


def _frames(store: FrameStore, clf: LoadedClassifier, idx: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    m = store.manifest.iloc[idx]
    y = store.labels_as_int(idx, positive=clf.positive_class)
    prob = clf.predict_proba(np.asarray(store.frames[idx]), batch_size=batch_size)
    return y, prob, m


def predict_holdout(store: FrameStore, clf: LoadedClassifier, *, batch_size: int = 256) -> HoldoutPrediction:
    """Positive-class probability of every test frame of the classifier's outer split, patient
    scores, and its patient threshold (chosen on that split's inner validation patients)."""
    _check_compatible(store, clf)
    cell = clf.cell
    y, prob, m = _frames(store, clf, test_indices(store, cell.fold), batch_size)
    pid, vid = m["patient_id"].astype(str).to_numpy(), m["video_id"].astype(str).to_numpy()
    rule = str(clf.meta.get("threshold_rule") or "youden")
    if clf.meta.get("patient_threshold") is not None:
        thr = float(clf.meta["patient_threshold"])
    else:  # a classifier recorded before it chose its own: choose on its fold's inner validation patients here
        vy, vp, vm = _frames(store, clf, store.view(cell.fold, "val"), batch_size)
        thr = patient_threshold(patient_scores(vy, vp, vm["patient_id"].astype(str).to_numpy(), vm["video_id"].astype(str).to_numpy()),
                                rule=rule)
    repeat, outer_fold = store.split_of(cell.fold)
    generator = cell.generator if cell.arm in SYNTHETIC_ARMS else ""
    return HoldoutPrediction(
        name=classifier_name(cell.arm, cell.fraction, cell.seed, ratio=cell.ratio, gan_seed=cell.gan_seed, fold=cell.fold,
                             generator=generator),
        arm=cell.arm, fraction=cell.fraction, seed=cell.seed, ratio=cell.ratio, val_threshold=clf.threshold, y=y, prob=prob, patient_id=pid, video_id=vid,
        patients=patient_scores(y, prob, pid, vid), patient_threshold=float(thr),
        fold=outer_fold, repeat=repeat, split=cell.fold, gan_seed=cell.gan_seed, generator=generator,
        meta={"dir": str(clf.path), "hyperparams": clf.meta.get("hyperparams"), "val_auc": clf.meta.get("val_auc"),
              "threshold_rule": rule, "mlflow_run_id": clf.meta.get("mlflow_run_id")},
    )


def score_rows(pred: HoldoutPrediction) -> pd.DataFrame:
    """The classifier's rows of the long score table (lusynth.stats.scores.COLUMNS)."""
    p = pred.patients
    # a ratio sweep trains several real+synthetic classifiers per cell: a ratio other than 1 is an
    # arm of its own for the statistics, named with its ratio (the questions compare ratio 1)
    arm = pred.arm if pred.ratio in (0.0, 1.0) else f"{pred.arm} r={pred.ratio:g}"
    return pd.DataFrame({"repeat": pred.repeat, "fold": pred.fold, "arm": arm, "ratio": pred.ratio, "fraction": pred.fraction,
                         "generator": pred.generator, "gan_seed": pred.gan_seed, "classifier_seed": pred.seed, "patient_id": p["patient_id"].to_numpy(),
                         "label": p["label"].to_numpy(), "score": p["score"].to_numpy(), "threshold": pred.patient_threshold})


def _patient_metrics(pred: HoldoutPrediction, params: EvaluateParams) -> dict[str, dict[str, Any]]:
    labels, scores = pred.patients["label"].to_numpy(), pred.patients["score"].to_numpy()
    w = stratified_weights(labels, n_resamples=params.n_bootstrap, rng=np.random.default_rng(params.seed))
    r = run_metrics(labels, scores, pred.patient_threshold, w)
    out = {}
    for m in METRICS:
        lo, hi = percentile_interval(r.replicates[m], params.ci)
        out[m] = {"value": r.point[m], "lo": lo, "hi": hi, "n_undefined": r.n_undefined(m)}
    return out


def metrics_json(pred: HoldoutPrediction, params: EvaluateParams) -> dict[str, dict[str, Any]]:
    """{level: {threshold: {metric: {value, lo, hi}}}}: frame at 0.5 and val, patient at the patient threshold."""
    frame = {}
    for which, thr in (("0.5", 0.5), ("val", pred.val_threshold)):
        frame[which] = bootstrap_metrics(pred.y, pred.prob, pred.patient_id, threshold=thr, n_resamples=params.n_bootstrap,
                                         ci=params.ci, seed=params.seed).as_dict()
    return {"frame": frame, "patient": {"val": _patient_metrics(pred, params)}}


def roc_json(pred: HoldoutPrediction) -> dict[str, dict[str, list[float]]]:
    """ROC points per level (fpr, tpr, thresholds)."""
    return {"frame": roc_points(pred.y, pred.prob),
            "patient": roc_points(pred.patients["label"].to_numpy(), pred.patients["score"].to_numpy())}
