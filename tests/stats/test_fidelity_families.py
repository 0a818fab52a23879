"""Per-patient fidelity of generator families with intervals over the outer splits
(lusynth.stats.fidelity): hand-computable answers, and a simulation with a known difference
checked for coverage."""

import math

import numpy as np
import pytest
from scipy import stats as st

from lusynth.stats.fidelity import family_fidelity


def _audit(family: str, fold: int, label: str, seed: int, syn: float, floor: float, n_test: int = 3, detail: float = 1.0) -> dict:
    return {"generator": family, "fold": fold, "label": label, "gan_seed": seed, "fraction": 0.5,
            "fidelity": {"sharpness": 10.0 * detail, "sharpness_holdout": 10.0},
            "fidelity_patient": {"n_test_patients": n_test, "n_floor_patients": 2,
                                 "embedding": {"synthetic": {"nn1_accuracy": syn}, "real_floor": {"nn1_accuracy": floor}}}}


def test_estimates_are_means_of_split_means_with_the_corrected_t_interval() -> None:
    audits = [
        _audit("dcgan", 0, "a", 0, 0.9, 0.6), _audit("dcgan", 0, "b", 0, 0.7, 0.5),
        _audit("dcgan", 1, "a", 0, 0.8, 0.6), _audit("dcgan", 2, "a", 0, 0.6, 0.6),
        _audit("fastgan", 0, "a", 0, 0.6, 0.6), _audit("fastgan", 0, "b", 0, 0.6, 0.5),
        _audit("fastgan", 1, "a", 0, 0.7, 0.6), _audit("fastgan", 1, "b", 0, 0.5, 0.5),  # no DCGAN cell to pair with
        _audit("fastgan", 2, "a", 0, 0.55, 0.6),
        {"generator": "fastgan", "fold": 2, "label": "b", "gan_seed": 0, "fraction": 0.5, "fidelity": {"sharpness": 4.0, "sharpness_holdout": 10.0},
         "fidelity_patient": {"skipped": "too few patients"}},  # per-patient fidelity not measured: fine detail only
    ]
    sizes = {0: (4, 16), 1: (4, 16), 2: (5, 15)}
    dc, fg = family_fidelity(audits, sizes)
    assert (dc["generator"], fg["generator"]) == ("dcgan", "fastgan") and "minus_reference" not in dc
    # split means: fastgan 0.6, 0.6, 0.55
    assert fg["synthetic"]["estimate"] == pytest.approx((0.6 + 0.6 + 0.55) / 3)
    assert fg["synthetic"]["n_cells"] == 5 and fg["synthetic"]["n_splits"] == 3 and fg["n_test_patients"] == 15
    # minus floor, per split: (0 + 0.1)/2, (0.1 + 0)/2, -0.05
    assert fg["minus_floor"]["estimate"] == pytest.approx((0.05 + 0.05 - 0.05) / 3)
    # minus the DCGAN in the shared cells only: split 0 (-0.3, -0.1), split 1 (-0.1), split 2 (-0.05)
    d = np.array([-0.2, -0.1, -0.05])
    m = fg["minus_reference"]
    assert m["estimate"] == pytest.approx(d.mean()) and m["n_cells"] == 4
    ratio = np.mean([4 / 16, 4 / 16, 5 / 15])
    se = math.sqrt((1 / 3 + ratio) * d.var(ddof=1))
    q = st.t.ppf(0.975, 2)
    assert m["se"] == pytest.approx(se) and m["df"] == 2
    assert m["ci"] == pytest.approx([d.mean() - q * se, d.mean() + q * se])
    assert [x["estimate"] for x in m["per_split"]] == pytest.approx(d.tolist())
    # fine detail over every audited generator, the unmeasured one too: split means 1, 1, (1 + 0.4) / 2
    assert fg["fine_detail"]["estimate"] == pytest.approx((1 + 1 + 0.7) / 3) and fg["fine_detail"]["n_cells"] == 6


def test_one_split_gives_no_interval_and_unknown_splits_are_refused() -> None:
    audits = [_audit("dcgan", 0, "a", 0, 0.9, 0.6), _audit("dcgan", 0, "a", 1, 0.7, 0.6)]
    (e,) = family_fidelity(audits, {0: (4, 16)})
    assert e["n_test_patients"] == 3 and e["synthetic"]["n_cells"] == 2  # two GAN seeds read the same 3 test patients
    assert e["synthetic"]["estimate"] == pytest.approx(0.8) and e["synthetic"]["ci"] == [None, None]
    with pytest.raises(ValueError, match=r"outer split\(s\) \[0\]"):
        family_fidelity(audits, {1: (4, 16)})
    assert family_fidelity([{"generator": "dcgan", "fold": 0, "label": "a", "fraction": 1.0, "fidelity_patient": {"skipped": "x"}}], {}) == []
    (only_detail,) = family_fidelity([{"generator": "dcgan", "fold": 0, "label": "a", "fraction": 1.0, "fidelity": {"sharpness": 5.0, "sharpness_holdout": 10.0},
                                       "fidelity_patient": {"skipped": "x"}}], {0: (4, 16)})
    assert set(only_detail) & {"synthetic", "minus_floor", "minus_reference"} == set() and only_detail["fine_detail"]["estimate"] == 0.5


def _simulate(rng: np.random.Generator, *, splits: int, true_diff: float) -> list[dict]:
    """Two families over ``splits`` outer splits, 2 classes x 2 GAN seeds each. A split's embedding and
    test patients shift every reading of the split (shared by both families, so it cancels in the
    paired difference); the split also shifts the difference (which patients the GANs trained on),
    and each cell has its own noise (the seed, the few patients)."""
    audits = []
    for k in range(splits):
        shared, split_diff = rng.normal(0, 0.08), rng.normal(0, 0.05)
        for label in ("a", "b"):
            for seed in (0, 1):
                base = 0.8 + shared + rng.normal(0, 0.04)
                audits.append(_audit("dcgan", k, label, seed, base + rng.normal(0, 0.03), 0.6))
                audits.append(_audit("fastgan", k, label, seed, base + true_diff + split_diff + rng.normal(0, 0.03), 0.6))
    return audits


def test_the_paired_interval_covers_a_known_difference_at_its_level() -> None:
    # independent simulated splits (no shared training patients), so with n_test/n_train ~ 0 the
    # corrected t is the plain t over splits and must cover at its nominal 95 %; a normal quantile
    # with 5 splits covers about 88 %, and treating the 20 cells as independent ignores the split's
    # shift of the difference and covers less still
    rng = np.random.default_rng(7)
    n, true_diff = 1000, -0.1
    covered, widths = 0, []
    for _ in range(n):
        (_, fg) = family_fidelity(_simulate(rng, splits=5, true_diff=true_diff), {k: (1, 10_000) for k in range(5)})
        lo, hi = fg["minus_reference"]["ci"]
        covered += lo <= true_diff <= hi
        widths.append(hi - lo)
    slack = 3 * math.sqrt(0.05 * 0.95 / n)
    assert abs(covered / n - 0.95) <= slack, covered / n
    # the interval is informative: it excludes 0 for a difference of -0.1 most of the time
    assert np.median(widths) < 0.2, np.median(widths)


def test_the_report_table_gives_each_family_its_level_floor_gap_and_difference_with_intervals() -> None:
    from lusynth.report.tables import fidelity_family_rows

    audits = [_audit(fam, k, "a", 0, syn, 0.6, detail=d) for k in (0, 1)
              for fam, syn, d in (("dcgan", 0.9 - 0.1 * k, 2.0 + k), ("fastgan", 0.7 - 0.05 * k, 0.5))]
    audits.append(_audit("fastgan", 2, "a", 0, 0.6, 0.6))  # a split the DCGAN did not measure: in the level, not the difference
    entries = family_fidelity(audits, {0: (4, 16), 1: (4, 16), 2: (4, 16)})
    for a, (steps, tflop, seconds) in zip(audits, ((100, 1.0, 50.0), (300, 2.0, 70.0), (60, 3.0, 40.0), (40, 5.0, None)), strict=False):
        a["training"] = {"steps": steps, "epochs": 1, "tflop": tflop, "seconds": seconds}
    header, body = fidelity_family_rows({"fidelity_families": entries, "audits": audits})
    assert header == ["generator family", "training fraction", "cells (splits)", "1-NN accuracy per patient [95% CI] (↓)",
                      "− real floor", "− DCGAN", "fine detail, synthetic ÷ real (1 = real)", "training per GAN, median: steps · TFLOP · seconds"]
    # medians over each family's GANs at that fraction (a part no GAN has is "-"; a GAN without a record is left out)
    assert body[0][7] == "80 · 2 · 45" and body[1][7] == "170 · 3.5 · 70"
    dc, fg = body
    assert dc[6].startswith("2.500 [") and fg[6].startswith("0.667 [")  # split means 0.5, 0.5, 1
    assert dc[:3] == ["DCGAN", "0.5", "2 (2)"] and dc[3].startswith("0.850 [") and dc[4].startswith("+0.250 [") and dc[5] == "reference"
    # FastGAN-lite: (0.7 + 0.65 + 0.6) / 3 = 0.65; minus the DCGAN over splits 0 and 1 only: (-0.2 - 0.15) / 2
    assert fg[:3] == ["FastGAN-lite", "0.5", "3 (3)"] and fg[3].startswith("0.650 [") and fg[5].startswith("-0.175 [")
    assert fidelity_family_rows({}) == (header, [])
    (row,) = fidelity_family_rows({"fidelity_families": family_fidelity([{**audits[0], "fidelity_patient": {"skipped": "x"}}], {0: (4, 16)})})[1]
    assert row[2:] == ["0", "-", "-", "reference", "2.000 [no interval]", "-"]


def test_the_estimates_are_tracked_as_flat_metrics_with_their_bounds() -> None:
    from lusynth.report.render import headline_metrics

    audits = [_audit(fam, k, "a", 0, syn, 0.6) for k in (0, 1) for fam, syn in (("dcgan", 0.9 - 0.1 * k), ("fastgan", 0.7 - 0.05 * k))]
    flat = headline_metrics({"fidelity_families": family_fidelity(audits, {0: (4, 16), 1: (4, 16)})})
    assert flat["fidelity_patient_minus_reference_fastgan_f0.5"] == pytest.approx(-0.175)
    assert flat["fidelity_patient_minus_reference_fastgan_f0.5_lo"] < -0.175 < flat["fidelity_patient_minus_reference_fastgan_f0.5_hi"]
    assert flat["fidelity_patient_synthetic_dcgan_f0.5"] == pytest.approx(0.85) and "fidelity_patient_minus_reference_dcgan_f0.5" not in flat
    assert "fidelity_patient_fine_detail_dcgan_f0.5" in flat and "fidelity_patient_fine_detail_dcgan_f0.5_lo" not in flat  # no spread: no bounds
