"""The long table of patient-level scores that every statistic of the experiment starts from.

One row per (repeat, fold, arm, fraction, generator, gan_seed, classifier_seed, patient_id): the
patient's label (1 = positive class), its score and the classifier's patient-level threshold.
``fold = 0``, ``repeat = 0`` is a single train/holdout split; ``gan_seed = 0`` where no GAN is
involved (the ``real`` arm) or only one GAN was trained; ``generator`` is the family of the GANs a
synthetic arm's classifier read (``dcgan`` | ``fastgan``) and ``""`` where no GAN is involved (a
table written before the column existed reads as that: its synthetic arms are DCGAN arms). A *split* is one (repeat, fold): its rows hold that
fold's test patients, scored by classifiers that never saw them.

Aggregation (one rule, used for labels and scores alike, so they agree): frames of one clip share
a label, and a clip's score is its mean frame probability; a patient is positive when any of its
clips is, and its score is the maximum clip score -- "any clip positive" for the label matches
"the most suspicious clip" for the score. A patient with one clip gets its mean frame probability.

Thresholds are chosen where they are applied: a classifier's patient-level threshold comes from
the patient-level scores of the *validation* patients (never a frame threshold reused on patient
means), with the classifier's own rule (Youden or F1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lusynth.metrics.classification import choose_threshold

#: the columns of the score table, in order
COLUMNS: tuple[str, ...] = ("repeat", "fold", "arm", "fraction", "generator", "gan_seed", "classifier_seed", "patient_id", "label",
                            "score", "threshold")
#: a training run (one classifier): the columns that identify it
RUN: tuple[str, ...] = ("repeat", "fold", "arm", "fraction", "generator", "gan_seed", "classifier_seed")
SPLIT: tuple[str, ...] = ("repeat", "fold")


def patient_scores(y: np.ndarray, prob: np.ndarray, patient_id: Sequence[str] | np.ndarray,
                   clip_id: Sequence[str] | np.ndarray) -> pd.DataFrame:
    """Frame predictions -> one row per patient (``patient_id``, ``label``, ``score``), by the module's rule.

    ``y`` must be constant within a clip (frames of one clip share the clip's label).
    """
    df = pd.DataFrame({"patient_id": np.asarray(patient_id).astype(str), "clip": np.asarray(clip_id).astype(str),
                       "y": np.asarray(y).astype(np.int64), "p": np.asarray(prob, dtype=np.float64)})
    if len(df) == 0:
        return pd.DataFrame({"patient_id": pd.Series(dtype=str), "label": pd.Series(dtype=np.int64), "score": pd.Series(dtype=float)})
    if df["p"].isna().any():
        raise ValueError("prob contains NaN; the classifier output is broken")
    clips = df.groupby(["patient_id", "clip"], sort=True).agg(y_min=("y", "min"), y=("y", "max"), p=("p", "mean"))
    mixed = clips.index[clips["y_min"] != clips["y"]]
    if len(mixed):
        raise ValueError(f"clip {mixed[0][1]!r} of patient {mixed[0][0]!r} has frames of both labels; a clip has one label")
    pat = clips.groupby(level="patient_id", sort=True).agg(label=("y", "max"), score=("p", "max")).reset_index()
    pat["label"] = pat["label"].astype(np.int64)
    return pat


def patient_threshold(val: pd.DataFrame, *, rule: str) -> float:
    """A patient-level threshold from validation patients' ``label`` and ``score`` (``rule``: youden | f1)."""
    return choose_threshold(val["label"].to_numpy(), val["score"].to_numpy(), rule=rule)


def check_scores(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its columns typed; one line naming the problem when it is not a score table."""
    if "generator" not in table.columns:  # written before generator families: every synthetic arm is a DCGAN arm
        from lusynth.classifier.params import SYNTHETIC_ARMS

        table = table.assign(generator=np.where(table["arm"].isin(SYNTHETIC_ARMS), "dcgan", "")) if "arm" in table.columns else table
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"score table lacks column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    t = table.loc[:, list(COLUMNS)].copy()
    for c in ("repeat", "fold", "gan_seed", "classifier_seed", "label"):
        t[c] = t[c].astype(np.int64)
    t["fraction"] = t["fraction"].astype(np.float64)
    t["score"] = t["score"].astype(np.float64)
    t["threshold"] = t["threshold"].astype(np.float64)
    t["arm"] = t["arm"].astype(str)
    t["generator"] = t["generator"].fillna("").astype(str)
    t["patient_id"] = t["patient_id"].astype(str)
    if not t["label"].isin((0, 1)).all():
        raise ValueError("score table: label must be 0/1 (1 = positive class)")
    if t["score"].isna().any():
        raise ValueError("score table: a score is NaN; the classifier output is broken")
    codes = {c: pd.factorize(t[c])[0].astype(np.int64) for c in (*RUN, "patient_id", "label")}

    def key(*cols: str) -> np.ndarray:  # one integer per distinct combination (mixed radix), cheap at any size
        k = np.zeros(len(t), np.int64)
        for c in cols:
            k = k * (int(codes[c].max()) + 1) + codes[c]
        return k

    def first_repeated(k: np.ndarray) -> int | None:
        _, first, counts = np.unique(k, return_index=True, return_counts=True)
        return int(first[counts > 1][0]) if (counts > 1).any() else None

    if (i := first_repeated(key(*RUN, "patient_id"))) is not None:
        raise ValueError(f"score table: patient {t['patient_id'].iloc[i]!r} appears twice for one training run; one row per run and patient")
    u = np.unique(key(*SPLIT, "patient_id", "label"), return_index=True)[1]
    if (i := first_repeated(key(*SPLIT, "patient_id")[u])) is not None:
        raise ValueError(f"score table: patient {t['patient_id'].iloc[u[i]]!r} has two labels in one split")
    u = np.unique(key(*SPLIT, "patient_id"), return_index=True)[1]
    if (i := first_repeated(key("repeat", "patient_id")[u])) is not None:
        raise ValueError(f"score table: patient {t['patient_id'].iloc[u[i]]!r} is a test patient of two folds of one repeat")
    return t.reset_index(drop=True)
