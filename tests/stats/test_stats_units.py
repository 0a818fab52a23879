"""Unit checks of lusynth.stats with hand-computable answers."""

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from lusynth.stats.bootstrap import stratified_weights
from lusynth.stats.inference import Estimate, SplitValue, combine, decide, holm
from lusynth.stats.questions import Analysis, AnalysisParams, analyse
from lusynth.stats.scores import check_scores, patient_scores
from tests.stats.simulation import simulate_table


def _est(estimate: float, se: float, *, df: float = math.inf, too_few: bool = False) -> Estimate:
    q = 1.959963984540054
    return Estimate(estimate, se, df, (estimate - q * se, estimate + q * se), 0.95, "m", 1, 2, 10, 10, 100, 0, too_few, "t")


def test_stratified_resamples_keep_both_classes_and_their_sizes() -> None:
    y = np.array([0, 0, 0, 1, 1])
    w = stratified_weights(y, n_resamples=500, rng=np.random.default_rng(0))
    assert (w[:, y == 1].sum(1) == 2).all() and (w[:, y == 0].sum(1) == 3).all()


def test_patient_label_is_any_clip_and_score_the_most_suspicious_clip() -> None:
    p = patient_scores(np.array([0, 0, 1, 1, 0]), np.array([0.1, 0.3, 0.8, 0.6, 0.9]),
                       np.array(["a", "a", "a", "a", "b"]), np.array(["c1", "c1", "c2", "c2", "c3"]))
    assert p["patient_id"].tolist() == ["a", "b"] and p["label"].tolist() == [1, 0]
    assert p["score"].tolist() == pytest.approx([0.7, 0.9])
    with pytest.raises(ValueError, match="both labels"):
        patient_scores(np.array([0, 1]), np.array([0.1, 0.2]), np.array(["a", "a"]), np.array(["c", "c"]))


def test_score_table_refuses_a_patient_tested_in_two_folds_and_duplicates() -> None:
    t = simulate_table(np.random.default_rng(0), n_per_class=4, mus={"real": 1.0}, folds=2, classifier_seeds=2)
    bad = t.copy()
    bad.loc[bad.index[0], "fold"] = 1 - bad.loc[bad.index[0], "fold"]
    with pytest.raises(ValueError, match="two folds"):
        check_scores(bad)
    with pytest.raises(ValueError, match="twice"):
        check_scores(pd.concat([t, t.iloc[:1]]))
    with pytest.raises(ValueError, match="lacks column"):
        check_scores(t.drop(columns="threshold"))


def test_identical_arms_share_resamples_so_their_difference_is_exactly_zero() -> None:
    t = simulate_table(np.random.default_rng(1), n_per_class=8, mus={"real": 1.0}, classifier_seeds=1)
    t2 = t.assign(arm="real+synthetic")
    a = Analysis(pd.concat([t, t2]), AnalysisParams(n_resamples=200))
    e = a.estimate("real+synthetic", 0.5, "auc", versus="real")
    assert e is not None and e.estimate == 0 and e.se == 0
    assert decide(e, hypothesis="superiority", margin=0).verdict == "inconclusive"


def test_nadeau_bengio_standard_error_over_folds() -> None:
    pts = [0.1, 0.0, 0.2, 0.1]
    splits = [SplitValue(p, np.zeros(10), 0.0, 2, False, 5, 15, 3, 2) for p in pts]
    e = combine(splits, min_patients_per_class=1)
    assert e.df == 3 and e.se == pytest.approx(math.sqrt((1 / 4 + 5 / 15) * np.var(pts, ddof=1)))
    assert e.estimate == pytest.approx(0.1) and e.n_undefined == 0


def test_interval_is_cut_to_the_range_of_the_value_and_says_so() -> None:
    # two folds that disagree wildly: the t interval with 1 df reaches far past [0, 1]
    splits = [SplitValue(p, np.zeros(10), 0.0, 1, True, 4, 8, 2, 2) for p in (0.1, 0.9)]
    raw = combine(splits, min_patients_per_class=1)
    assert raw.ci[0] < 0 and raw.ci[1] > 1
    cut = combine(splits, min_patients_per_class=1, bounds=(0.0, 1.0))
    assert cut.ci == (0.0, 1.0) and cut.estimate == raw.estimate and cut.se == raw.se
    assert any("cut to the value's range" in n for n in cut.notes)
    inside = combine([SplitValue(0.5, np.linspace(0.45, 0.55, 50), 0.0, 1, True, 40, 0, 20, 20)], bounds=(0.0, 1.0))
    assert 0 < inside.ci[0] < inside.ci[1] < 1 and not any("cut" in n for n in inside.notes)


def test_analysis_intervals_stay_inside_the_metric_range() -> None:
    # few patients, two folds, high AUC: uncut t intervals (1 df) pass 1 for some arm
    table = simulate_table(np.random.default_rng(3), n_per_class=4, mus={"real": 3.0, "real+synthetic": 3.0, "synthetic": 3.0},
                           folds=2)
    result = analyse(table, AnalysisParams(min_patients_per_class=1))
    cells = [c for row in result["table"]["rows"] for arm in row["cells"].values() for c in arm.values()]
    # an arm whose two folds read the same AUC has no spread to build an interval from: NaN, not [x, x]
    with_interval = [c for c in cells if not math.isnan(c["lo"])]
    assert all(c["se"] == 0 and math.isnan(c["hi"]) for c in cells if c not in with_interval)
    assert with_interval and all(0.0 <= c["lo"] <= c["hi"] <= 1.0 for c in with_interval), cells
    assert any(c["hi"] == 1.0 for c in with_interval)  # cut, not merely narrow


def test_undefined_resamples_are_counted_and_said() -> None:
    reps = np.r_[np.full(7, np.nan), np.linspace(-0.1, 0.1, 93)]
    e = combine([SplitValue(0.0, reps, 0.0, 2, True, 20, 0, 10, 10)])
    assert e.n_undefined == 7 and any("7 of 100" in n for n in e.notes) and math.isfinite(e.se)
    assert "none" in e.training_variance  # one run per arm: said, not hidden


def test_too_few_patients_labels_the_interval_and_blocks_a_verdict() -> None:
    e = combine([SplitValue(0.3, np.linspace(0.2, 0.4, 50), 0.0, 2, True, 4, 0, 2, 2)], min_patients_per_class=5)
    assert e.too_few_patients and e.as_dict()["ci_label"] == "too few patients"
    assert decide(e, hypothesis="superiority", margin=0.05).verdict == "inconclusive"


@pytest.mark.parametrize(("estimate", "hyp", "verdict"), [
    (0.10, "superiority", "superior"), (-0.10, "superiority", "inferior"), (0.02, "superiority", "inconclusive"),
    (0.0, "non-inferiority", "non-inferior"), (-0.09, "non-inferiority", "inferior"), (-0.03, "non-inferiority", "inconclusive"),
    (0.10, "non-inferiority", "superior"),
])
def test_verdicts_follow_the_interval_and_the_margin(estimate: float, hyp: str, verdict: str) -> None:
    d = decide(_est(estimate, 0.02), hypothesis=hyp, margin=0.05)
    assert d.verdict == verdict
    assert d.min_detectable_difference == pytest.approx((1.959964 + 0.841621) * 0.02, rel=1e-5)
    z = (estimate + (0.05 if hyp == "non-inferiority" else 0.0)) / 0.02
    assert d.p_value == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))  # a one-sided normal p-value, not a resample share


def test_holm_is_statsmodels_and_keeps_undefined_out_of_the_family() -> None:
    p = [0.01, float("nan"), 0.04, 0.03]
    out = holm(p)
    ref = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    assert math.isnan(out[1]) and out[0] == pytest.approx(ref[0]) and out[2] == pytest.approx(ref[1]) and out[3] == pytest.approx(ref[2])


def test_analysis_report_has_protocol_patients_and_both_questions() -> None:
    t = simulate_table(np.random.default_rng(2), n_per_class=6, mus={"real": 1.0, "real+synthetic": 1.5, "synthetic": 0.8}, folds=2, gan_seeds=2)
    r = analyse(t, AnalysisParams(n_resamples=100))
    assert r["protocol"]["folds"] == 2 and r["protocol"]["gan_seeds"] == 2 and r["protocol"]["classifier_seeds"] == 3
    assert r["n_patients"] == {"positive": 6, "negative": 6}
    assert [q["question"] for q in r["questions"]] == ["a", "b"]
    for q in r["questions"]:
        assert q["verdict"] in ("superior", "non-inferior", "inferior", "inconclusive") and len(q["ci"]) == 2
        assert q["secondary"] and all("p_value_holm" in s for s in q["secondary"])
    assert r["questions"][1]["margin"] == 0.05 and r["table"]["rows"][0]["cells"]["real"]["auc"]["mean"] > 0.5


def test_a_verdicts_reason_names_its_level_and_bound_as_printed_elsewhere() -> None:
    # a Bonferroni level is 97.5%, not "98%"; superiority's bound is 0, not "-0"
    from dataclasses import replace

    e = replace(_est(0.02, 0.05), level=0.975)
    assert decide(e, hypothesis="superiority", margin=0.05).reason.startswith("the 97.5% interval covers 0;")
    assert decide(_est(-0.2, 0.02), hypothesis="superiority", margin=0.05).reason == "the whole 95% interval is below 0"
    assert decide(_est(-0.02, 0.05), hypothesis="non-inferiority", margin=0.05).reason.startswith("the 95% interval covers -0.05;")


def test_splits_that_agree_exactly_give_no_interval_rather_than_a_zero_width_one() -> None:
    """Two folds with the same difference have a spread of 0: the corrected t has nothing to build an
    interval from, so the interval is NaN (not [d, d], which would claim certainty), the note says
    why, the verdict is inconclusive and the report's sentence says "no interval"."""
    from lusynth.report.verdicts import question_sentences

    splits = [SplitValue(-0.139, np.zeros(10), 0.0, 1, True, 12, 12, 6, 6) for _ in range(2)]
    e = combine(splits, min_patients_per_class=1, bounds=(-1.0, 1.0))
    assert e.estimate == pytest.approx(-0.139) and e.se == 0
    assert all(math.isnan(v) for v in e.ci) and any("the 2 splits gave the same value" in n for n in e.notes)
    d = decide(e, hypothesis="non-inferiority", margin=0.05)
    assert d.verdict == "inconclusive" and math.isnan(d.p_value) and "the 2 splits gave the same value" in d.reason
    q = {"question": "b", "arm": "synthetic", "baseline": "real", "fraction": 0.5, "endpoint": "patient-level auc", "level": 0.975,
         "hypothesis": "non-inferiority", "margin": 0.05, "estimate": e.estimate, "ci": list(e.ci), "p_value": d.p_value,
         "verdict": d.verdict, "reason": d.reason, "min_detectable_difference": None}
    (sentence,) = question_sentences({"questions": [q]})
    assert "no interval: no standard error (no variability: the 2 splits gave the same value" in sentence and "CI -0.139 to -0.139" not in sentence
    # a spread that is not zero still gives the t interval
    e2 = combine([SplitValue(p, np.zeros(10), 0.0, 1, True, 12, 12, 6, 6) for p in (-0.1, -0.2)], min_patients_per_class=1)
    assert e2.ci[0] < -0.15 < e2.ci[1]


def test_a_question_that_lost_a_split_to_a_withheld_generator_says_from_how_many() -> None:
    """A fold whose real+synthetic classifier was not trained (generate withheld its GAN's frames): the
    paired estimate uses the other folds and says so, naming the fold; the question on complete arms says nothing."""
    t = simulate_table(np.random.default_rng(5), n_per_class=6, mus={"real": 1.0, "real+synthetic": 1.2, "synthetic": 0.8}, folds=3)
    t = t[~((t["arm"] == "real+synthetic") & (t["fold"] == 1))]
    qs = {q["question"]: q for q in analyse(t)["questions"]}
    assert qs["a"]["n_splits"] == 2
    assert any(n.startswith("from 2 of 3 splits: no 'real+synthetic' classifier in fold 1 (repeat 0)") for n in qs["a"]["notes"])
    assert qs["b"]["n_splits"] == 3 and not any("splits: no" in n for n in qs["b"]["notes"])
