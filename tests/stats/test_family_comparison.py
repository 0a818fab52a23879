"""Question (c), one generator family against the paper's DCGAN, on simulated score tables with a
known answer (tests/stats/simulation.py: both families' real+synthetic arms on the same patients).

200 experiments per case; Monte-Carlo slack 3 binomial standard errors at the nominal rate. The
measured figures: ``python -m tests.stats.simulation``.
"""

import math

import numpy as np
import pytest

from lusynth.stats.questions import Analysis, AnalysisParams
from tests.stats.simulation import family_rates, mu_for_auc, simulate_table

N = 200
SLACK = 3 * math.sqrt(0.025 * 0.975 / N)


@pytest.mark.parametrize("folds", [1, 3])
def test_equal_families_are_covered_and_not_called_superior(folds: int) -> None:
    r = family_rates(n_per_class=12, auc_reference=0.8, auc_challenger=0.8, n_datasets=N, folds=folds, seed=21 + folds)
    assert r["coverage"] >= 0.90, r
    assert r["superior"] <= 0.025 + SLACK, r
    assert r["inferior"] <= 0.025 + SLACK, r


@pytest.mark.parametrize("folds", [1, 3])
def test_a_family_worse_by_the_margin_is_rarely_called_non_inferior(folds: int) -> None:
    # the one-sided 2.5% error of the non-inferiority claim at its boundary (true difference = -margin)
    r = family_rates(n_per_class=12, auc_reference=0.8, auc_challenger=0.75, n_datasets=N, folds=folds, margin=0.05, seed=41 + folds)
    assert r["non-inferior"] + r["superior"] <= 0.025 + SLACK, r
    assert r["coverage"] >= 0.90, r


def test_a_much_worse_family_is_found_inferior_more_often_with_more_patients() -> None:
    # the comparison cannot pass the tests above by never deciding, and its sign is challenger minus reference
    small = family_rates(n_per_class=6, auc_reference=0.85, auc_challenger=0.65, n_datasets=100, seed=5)
    large = family_rates(n_per_class=40, auc_reference=0.85, auc_challenger=0.65, n_datasets=100, seed=6)
    assert large["inferior"] >= 0.5 and large["inferior"] > small["inferior"], (small, large)
    assert large["superior"] == large["non-inferior"] == 0.0, large


def test_the_comparison_is_paired_on_the_same_patients() -> None:
    # both families' arms share each patient's random effect: the paired interval is much narrower
    # than the two arms' own intervals combined as if independent
    rng = np.random.default_rng(0)
    arm = "real+synthetic"
    t = simulate_table(rng, n_per_class=20, mus={"real": mu_for_auc(0.8)}, folds=3,
                       family_mus={"dcgan": {arm: mu_for_auc(0.8)}, "fastgan": {arm: mu_for_auc(0.8)}})
    a = Analysis(t, AnalysisParams(n_resamples=400, secondary_metrics=(), min_patients_per_class=1, replacement="none"))
    (c,), skipped = a.comparisons()
    assert not skipped and c["generator"] == "fastgan" and c["baseline_generator"] == "dcgan" and c["arm"] == c["baseline"] == arm
    own = [a.estimate(arm, 0.5, "auc", generator=g) for g in ("dcgan", "fastgan")]
    assert own[0] is not None and own[1] is not None
    assert c["se"] < 0.7 * math.hypot(own[0].se, own[1].se), (c["se"], own[0].se, own[1].se)
    # each fold's own difference, which the estimate averages (the report's "per fold" row)
    assert [x["fold"] for x in c["per_fold"]] == [0, 1, 2]
    assert np.mean([x["estimate"] for x in c["per_fold"]]) == pytest.approx(c["estimate"])
    qa = a.questions()[0][0]  # (a) of the DCGAN family
    assert len(qa["per_fold"]) == 3 and np.mean([x["estimate"] for x in qa["per_fold"]]) == pytest.approx(qa["estimate"])


def test_no_comparison_without_the_reference_family_or_a_second_family() -> None:
    rng = np.random.default_rng(1)
    arm = "real+synthetic"
    params = AnalysisParams(n_resamples=50, secondary_metrics=(), min_patients_per_class=1, replacement="none")
    one = Analysis(simulate_table(rng, n_per_class=6, mus={"real": 1.0, arm: 1.0}), params)
    assert one.comparisons() == ([], []) and one.protocol()["comparison_level"] == 0.95
    other = Analysis(simulate_table(rng, n_per_class=6, mus={"real": 1.0}, family_mus={"fastgan": {arm: 1.0}}), params)
    assert other.challengers() == [] and other.comparisons() == ([], [])
    three = Analysis(simulate_table(rng, n_per_class=6, mus={"real": 1.0},
                                    family_mus={g: {arm: 1.0} for g in ("dcgan", "fastgan", "ddpm")}), params)
    # two challengers: each decided at the Bonferroni level 1 - 0.05 / 2
    assert three.challengers() == ["ddpm", "fastgan"] and three.comparison_level() == pytest.approx(0.975)
    assert [c["level"] for c in three.comparisons()[0]] == [pytest.approx(0.975)] * 2


def test_the_report_shows_each_folds_difference() -> None:
    from lusynth.report.render import render_markdown

    rng = np.random.default_rng(2)
    arm = "real+synthetic"
    t = simulate_table(rng, n_per_class=9, mus={"real": mu_for_auc(0.8)}, folds=3,
                       family_mus={"dcgan": {arm: mu_for_auc(0.8)}, "fastgan": {arm: mu_for_auc(0.7)}})
    stats = Analysis(t, AnalysisParams(n_resamples=50, secondary_metrics=(), min_patients_per_class=1, replacement="none")).report()
    results = {**stats, "skipped_questions": stats["skipped"], "audits": []}
    md = render_markdown(results, {})
    (c,) = stats["comparisons"]
    folds = "; ".join(f"fold {x['fold']}: {x['estimate']:+.3f}" for x in c["per_fold"])
    section = md[md.index("### (c)"):]
    assert f"- per fold: {folds}\n" in section, section[:2000]
