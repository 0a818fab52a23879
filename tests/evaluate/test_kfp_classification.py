"""What the KFP UI's ClassificationMetrics show per arm: the frame-level confusion counts (a known
answer) and the choice of the arm's classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lusynth.evaluate.holdout import HoldoutPrediction
from lusynth.evaluate.result import Evaluation
from lusynth.evaluate.run import frame_confusion


def _pred(y: list[int], prob: list[float], val_threshold: float) -> HoldoutPrediction:
    n = len(y)
    return HoldoutPrediction(name="x", arm="real", fraction=1.0, seed=0, val_threshold=val_threshold, y=np.array(y),
                             prob=np.array(prob), patient_id=np.array(["p"] * n), video_id=np.array(["v"] * n),
                             patients=pd.DataFrame({"patient_id": ["p"], "label": [int(max(y))], "score": [float(np.mean(prob))]}),
                             patient_threshold=0.5)


def test_frame_confusion_counts_a_known_answer() -> None:
    # negatives 0.1 0.4 0.6 0.7, positives 0.3 0.5 0.8 0.9 0.95
    pred = _pred([0, 0, 0, 0, 1, 1, 1, 1, 1], [0.1, 0.4, 0.6, 0.7, 0.3, 0.5, 0.8, 0.9, 0.95], val_threshold=0.65)
    got = frame_confusion(pred)
    assert got["0.5"] == [[2, 2], [1, 4]]  # >= 0.5 is positive: 0.5 counts as a true positive
    assert got["val"] == [[3, 1], [2, 3]]
    # random data: the four cells always add up to the class counts
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = rng.random(500)
    m = frame_confusion(_pred(list(y), list(p), 0.3))["val"]
    assert m[0][0] + m[0][1] == int((y == 0).sum()) and m[1][0] + m[1][1] == int((y == 1).sum())
    assert m[1][1] == int(((p >= 0.3) & (y == 1)).sum())


def test_kfp_classification_takes_the_arms_largest_fraction_lowest_seed() -> None:
    roc = {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "thresholds": [1.0, 0.0]}

    def clf(arm: str, fraction: float, seed: int, tp: int) -> dict:
        return {"name": f"{arm} f={fraction:g} s={seed}", "arm": arm, "fraction": fraction, "seed": seed, "val_threshold": 0.4,
                "roc": {"frame": roc}, "confusion": {"val": [[5, 1], [2, tp]], "0.5": [[0, 0], [0, 0]]}}

    ev = Evaluation(path=Path("."), report={"classifiers": [clf("real", 0.5, 0, 1), clf("real", 1.0, 1, 2), clf("real", 1.0, 0, 3),
                                                            clf("synthetic", 1.0, 0, 4)]})
    got = ev.kfp_classification("real", ["no_consolidation", "consolidation"])
    assert got is not None and got["classifier"] == "real f=1 s=0" and got["matrix"] == [[5, 1], [2, 3]]
    assert got["categories"] == ["no_consolidation", "consolidation"] and got["roc"] == roc and got["threshold"] == 0.4
    assert ev.kfp_classification("real+synthetic") is None
