"""Per-patient fidelity: leave-one-patient-out 1-NN, the real-vs-real floor, fixed MMD bandwidth,
group permutation p-values -- each against a simulation with a known answer."""

import numpy as np

from lusynth.metrics.fidelity import fidelity_with_floor, mmd_permutation_test, one_nn_accuracy_parts, reference_gamma


def _patients(rng: np.random.Generator, n_patients: int, frames: int = 6, d: int = 8, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Frames of one patient sit close to the patient's own centre (clips of one patient are alike)."""
    centres = rng.normal(shift, 1.0, (n_patients, d))
    x = np.repeat(centres, frames, axis=0) + rng.normal(0, 0.05, (n_patients * frames, d))
    return x, np.repeat([f"p{i}" for i in range(n_patients)], frames)


def test_leave_one_patient_out_1nn_is_at_chance_for_real_vs_real() -> None:
    rng = np.random.default_rng(0)
    a, ga = _patients(rng, 30)
    b, gb = _patients(rng, 30)
    grouped = one_nn_accuracy_parts(a, b, real_groups=ga, fake_groups=gb)["accuracy"]
    frame_loo = one_nn_accuracy_parts(a, b)["accuracy"]
    assert abs(grouped - 0.5) < 0.12 and frame_loo > 0.95  # frame leave-one-out saturates for one distribution


def test_group_permutation_p_values_hold_their_size_where_frame_permutation_does_not() -> None:
    rng = np.random.default_rng(1)
    grouped, frames = 0, 0
    for _ in range(60):
        a, ga = _patients(rng, 8)
        b, gb = _patients(rng, 8)
        g = reference_gamma(np.concatenate([a, b]))
        grouped += mmd_permutation_test(a, b, gamma=g, n_permutations=99, x_groups=ga, y_groups=gb)[1] <= 0.05
        frames += mmd_permutation_test(a, b, gamma=g, n_permutations=99)[1] <= 0.05
    assert grouped / 60 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 60)  # nominal size under H0
    assert frames / 60 > 0.3  # treating correlated frames as independent rejects a true H0 far too often


def test_permutation_test_finds_a_real_shift() -> None:
    rng = np.random.default_rng(2)
    a, ga = _patients(rng, 10)
    b, gb = _patients(rng, 10, shift=1.5)
    _, p = mmd_permutation_test(a, b, gamma=reference_gamma(a), n_permutations=99, x_groups=ga, y_groups=gb)
    assert p <= 0.02


def test_floor_sits_beside_the_synthetic_numbers_and_the_bandwidth_is_fixed_by_real_data() -> None:
    rng = np.random.default_rng(3)
    test, gt = _patients(rng, 12)
    val, gv = _patients(rng, 12)
    good = _patients(rng, 12)[0]  # a generator indistinguishable from new patients
    bad = rng.normal(1.0, 1.0, good.shape)
    g = reference_gamma(np.concatenate([test, val]))
    r_good = fidelity_with_floor(test, gt, val, gv, good, gamma=g, n_permutations=49)
    r_bad = fidelity_with_floor(test, gt, val, gv, bad, gamma=g, n_permutations=49)
    assert r_good["real_floor"] == r_bad["real_floor"]  # the floor and the ruler do not move with the generator
    assert r_good["real_floor"]["nn1_accuracy"] < r_bad["synthetic"]["nn1_accuracy"]
    assert r_bad["synthetic"]["mmd2"] > r_good["synthetic"]["mmd2"] and r_bad["synthetic"]["mmd_p_value"] <= 0.04
