"""Classification metrics: hand-computed cases, scikit-learn agreement, bootstrap behaviour."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from lusynth.metrics.classification import (
    binary_metrics,
    bootstrap_metrics,
    choose_threshold,
    roc_points,
    weighted_metrics,
)


def test_hand_computed_case() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1])
    m = binary_metrics(y, p, threshold=0.5)
    # tp=2 fn=1 fp=1 tn=3; AUC: positive pairs won 11 of 12 (0.4 loses to 0.7 only)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(5 / 7) and m["f1"] == pytest.approx(4 / 6)
    assert m["auc"] == pytest.approx(10 / 12)


def test_agrees_with_sklearn_and_weighted_version() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1), 2)  # rounding creates ties
    m = binary_metrics(y, p, threshold=0.45)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["f1"] == pytest.approx(f1_score(y, p >= 0.45))
    w = np.vstack([np.ones(300), rng.integers(0, 3, 300)])
    wm = weighted_metrics(y, p, w, threshold=0.45)
    for k in ("auc", "accuracy", "f1", "sensitivity", "specificity"):
        assert wm[k][0] == pytest.approx(m[k])
    assert wm["auc"][1] == pytest.approx(roc_auc_score(y, p, sample_weight=w[1]))


def test_threshold_choice_on_validation() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    t = choose_threshold(y, p, rule="youden")
    assert 0.3 < t <= 0.6 and binary_metrics(y, p, threshold=t)["accuracy"] == 1.0
    t = choose_threshold(y, p, rule="f1")
    assert binary_metrics(y, p, threshold=t)["f1"] == 1.0
    pts = roc_points(y, p)
    assert pts["fpr"][0] == 0 and pts["tpr"][-1] == 1 and all(np.isfinite(pts["thresholds"]))


def _population_draw(rng: np.random.Generator, n_patients: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # per-patient random effect: frames of a patient are correlated, as in LUS clips
    groups = np.repeat(np.arange(n_patients), 10)
    y = np.repeat(np.arange(n_patients) % 2, 10)
    effect = np.repeat(rng.normal(0, 0.8, n_patients), 10)
    p = 1 / (1 + np.exp(-(1.2 * (2 * y - 1) + effect + rng.normal(0, 0.5, y.size))))
    return y, p, groups


def test_patient_bootstrap_ci_covers_the_population_accuracy() -> None:
    rng = np.random.default_rng(1)
    y, p, _ = _population_draw(rng, 4000)
    truth = binary_metrics(y, p)["accuracy"]
    covered = 0
    for _ in range(40):
        y, p, g = _population_draw(rng, 30)
        ci = bootstrap_metrics(y, p, g, n_resamples=300, seed=2)
        covered += ci.lo["accuracy"] <= truth <= ci.hi["accuracy"]
    assert covered >= 32  # nominal 95%: 38 of 40 expected; a frame-level bootstrap would cover far less


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="one probability per label"):
        binary_metrics(np.array([0, 1]), np.array([0.5]))
    assert np.isnan(binary_metrics(np.array([1, 1]), np.array([0.2, 0.9]))["auc"])
