"""The audit tells a leaking generator from a safe one: simulated cohorts with a known answer.

Demo size: 24 patients (14 train / 6 val / 4 holdout over two classes), 16 frames per patient,
200 synthetic frames per class -- the demo profile's store and ``generate.n_per_class``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from lusynth.privacy import simulate as sim
from lusynth.privacy.core import run_audit
from lusynth.privacy.gate import FAIL, PASS
from lusynth.privacy.params import AuditParams

FAST = AuditParams(features=("pixels",), n_permutations=300, n_bootstrap=300)


def _audit(gen: str, seed: int, *, patients: int = 24, n_per_class: int = 200, params: AuditParams = FAST,
           labelled: bool = True, **kw: float) -> dict:
    rng = np.random.default_rng(seed)
    co = sim.cohort(rng, patients=patients)
    x, y = getattr(sim, gen)(rng, co, n_per_class, **kw)
    return run_audit({"pixels": co.features}, co.patients, co.labels, co.roles, {"pixels": x}, y if labelled else None,
                     params=params)


@pytest.mark.parametrize("patients", [24, 48, 96])
def test_a_generator_that_returns_training_frames_with_noise_fails(patients: int) -> None:
    res = _audit("leaky_noise", patients, patients=patients)
    assert res["decision"] == FAIL
    assert res["memorisation"]["copy_rate"] > 0.9
    closer = res["memorisation"]["closer_to_training"]
    # frames copied from training patients outside the equal-sized subset carry no signal: share ~ 0.5 + k / (2 n_train)
    assert closer["share"] > 0.65 and closer["binomial_p_value"] < 1e-6
    assert all(res["membership"][a]["auc"] == 1.0 for a in ("distance", "reference"))


@pytest.mark.parametrize("patients", [24, 48, 96])
def test_a_generator_that_copies_two_patients_fails(patients: int) -> None:
    fails = sum(_audit("leaky_patients", s, patients=patients, share=0.3, copied_patients=2)["decision"] == FAIL for s in range(10))
    assert fails == 10


def test_an_independent_generator_does_not_fail_more_than_the_nominal_rate() -> None:
    draws = 100
    decisions = Counter(_audit("independent", 1000 + s)["decision"] for s in range(draws))
    # nominal: (1 - ci) / 2 = 2.5 % per release; allow simulation noise (1 % tail of Binomial(100, 0.05))
    assert decisions[FAIL] <= stats.binom.ppf(0.99, draws, 0.05)
    assert decisions[FAIL] < draws / 10


def test_a_large_independent_audit_passes() -> None:
    res = _audit("independent", 7, patients=240, params=AuditParams(features=("pixels",), max_mia_auc=0.75,
                                                                    n_permutations=300, n_bootstrap=300))
    assert res["decision"] == PASS, res["reasons"]


def test_figures_behind_the_decision() -> None:
    res = _audit("independent", 3)
    mem, n = res["memorisation"], res["n"]
    assert n["patients"] == {"member": 14, "calibration": 6, "nonmember": 4} and n["synthetic"] == 400
    assert mem["lo"] <= mem["copy_rate"] <= mem["hi"] and mem["at_most_without_memorisation"] == 0.01
    for attack in ("distance", "reference"):
        m = res["membership"][attack]
        assert m["n_members"] == 14 and m["n_nonmembers"] == 4 and 0 < m["p_value"] <= 1
        assert set(m["tpr_at_fpr"]) == {"0.01", "0.1"}
    assert {c["name"] for c in res["checks"]} == {"copy_rate", "distance_mia_auc", "reference_mia_auc"}
    assert res["fail_level"] == pytest.approx(1 - 0.05 / 3)


def test_unlabelled_synthetic_set_and_a_discriminator_score() -> None:
    rng = np.random.default_rng(5)
    co = sim.cohort(rng)
    x, _ = sim.leaky_noise(rng, co, 100)
    disc = np.where(co.roles == "member", 1.0, 0.0) + rng.normal(0, 0.1, len(co.roles))  # a discriminator that memorised
    res = run_audit({"pixels": co.features}, co.patients, co.labels, co.roles, {"pixels": x}, None, params=FAST, discriminator=disc)
    assert res["classes"] == ["*"] and res["decision"] == FAIL
    assert res["membership"]["discriminator"]["auc"] == 1.0


def test_bad_input_says_what_is_missing() -> None:
    rng = np.random.default_rng(6)
    co = sim.cohort(rng)
    x, y = sim.independent(rng, co, 20)
    roles = np.where(co.roles == "calibration", "member", co.roles)
    with pytest.raises(ValueError, match="no calibration frames"):
        run_audit({"pixels": co.features}, co.patients, co.labels, roles, {"pixels": x}, y, params=FAST)
    with pytest.raises(ValueError, match="same spaces"):
        run_audit({"pixels": co.features}, co.patients, co.labels, co.roles, {"embedding": x}, y, params=FAST)
