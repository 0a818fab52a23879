"""Patient-level splits: no leakage, stratification, nestedness, determinism."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from lusynth.data.splits import allocate, assign_folds, fold_roles, nested_fractions, split_patients


def _patients(n_a: int, n_b: int, n_ab: int = 0) -> dict[str, list[str]]:
    pats = {f"a{i}": ["a"] for i in range(n_a)}
    pats.update({f"b{i}": ["b"] for i in range(n_b)})
    pats.update({f"ab{i}": ["a", "b"] for i in range(n_ab)})
    return pats


def test_allocate_hand_cases() -> None:
    assert allocate(10, (0.6, 0.2, 0.2)) == [6, 2, 2]
    assert sum(allocate(7, (0.6, 0.2, 0.2))) == 7
    # three patients reach all three splits even though 0.2 * 3 < 1
    assert allocate(3, (0.6, 0.2, 0.2)) == [1, 1, 1]
    assert allocate(2, (0.6, 0.2, 0.2)) == [1, 1, 0]


@settings(max_examples=60, deadline=None)
@given(
    n_a=st.integers(3, 60),
    n_b=st.integers(3, 60),
    n_ab=st.integers(0, 5),
    seed=st.integers(0, 2**16),
    train=st.floats(0.3, 0.8),
)
def test_split_properties(n_a: int, n_b: int, n_ab: int, seed: int, train: float) -> None:
    pats = _patients(n_a, n_b, n_ab)
    fr = (train, (1 - train) / 2, (1 - train) / 2)
    split = split_patients(pats, fractions=fr, seed=seed)
    # every patient in exactly one split (a dict cannot hold two), none lost
    assert set(split) == set(pats)
    assert set(split.values()) <= {"train", "val", "holdout"}
    # stratified: each single-label stratum is within one patient of its ideal share (+1 for the minimum rule)
    for label, n in (("a", n_a), ("b", n_b)):
        members = [p for p in pats if pats[p] == [label]]
        for name, f in zip(("train", "val", "holdout"), fr, strict=False):
            got = sum(split[p] == name for p in members)
            assert abs(got - n * f) <= 2, (label, name, got, n * f)
            assert got >= 1  # every class reaches every split
    assert split == split_patients(pats, fractions=fr, seed=seed)  # deterministic


@settings(max_examples=60, deadline=None)
@given(n_a=st.integers(1, 40), n_b=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_nested_fractions(n_a: int, n_b: int, seed: int) -> None:
    pats = _patients(n_a, n_b)
    fractions = (0.25, 0.5, 0.75, 1.0)
    smallest = nested_fractions(pats, fractions=fractions, seed=seed)
    assert set(smallest) == set(pats)  # 1.0 includes everyone
    members = {f: {p for p, s in smallest.items() if s <= f} for f in fractions}
    for lo, hi in zip(fractions, fractions[1:], strict=False):
        assert members[lo] <= members[hi]  # nested
    for f in fractions:
        for label, n in (("a", n_a), ("b", n_b)):
            got = sum(1 for p in members[f] if pats[p] == [label])
            assert got == min(n, max(1, math.ceil(f * n - 1e-9)))  # per-class share, at least one


def test_seed_changes_assignment() -> None:
    pats = _patients(30, 30)
    assert split_patients(pats, seed=1) != split_patients(pats, seed=2)


def test_adding_a_class_keeps_other_strata() -> None:
    base = _patients(20, 20)
    more = dict(base, **{f"c{i}": ["c"] for i in range(9)})
    s1, s2 = split_patients(base, seed=3), split_patients(more, seed=3)
    assert all(s1[p] == s2[p] for p in base)


@settings(max_examples=40, deadline=None)
@given(n_a=st.integers(2, 40), n_b=st.integers(2, 40), k=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_stratified_k_fold_tests_every_patient_once_with_balanced_folds(n_a: int, n_b: int, k: int, seed: int) -> None:
    pats = _patients(n_a, n_b)
    fold_of = assign_folds(pats, folds=k, seed=seed)
    assert set(fold_of) == set(pats) and set(fold_of.values()) <= set(range(k))
    sizes = [sum(f == j for f in fold_of.values()) for j in range(k)]
    assert max(sizes) - min(sizes) <= 1  # folds as equal as they can be
    for label, n in (("a", n_a), ("b", n_b)):  # each class spread over the folds within one patient
        per = [sum(fold_of[p] == j for p in pats if pats[p] == [label]) for j in range(k)]
        assert max(per) - min(per) <= 1 and sum(per) == n
    assert fold_of == assign_folds(pats, folds=k, seed=seed)


def test_a_repeat_draws_new_folds() -> None:
    pats = _patients(20, 20)
    assert assign_folds(pats, folds=5, seed=0) != assign_folds(pats, folds=5, seed=0, repeat=1)


@settings(max_examples=40, deadline=None)
@given(n_a=st.integers(3, 30), n_b=st.integers(3, 30), k=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_inside_a_fold_no_test_patient_trains_or_validates(n_a: int, n_b: int, k: int, seed: int) -> None:
    from hypothesis import assume

    assume(min(n_a, n_b) >= 2 * k)  # at least 2 training patients per class in every fold
    pats = _patients(n_a, n_b)
    fold_of = assign_folds(pats, folds=k, seed=seed)
    tested: set[str] = set()
    for fold in range(k):
        roles = fold_roles(pats, fold_of, fold=fold, val_share=0.25, fractions=(0.5, 1.0), seed=seed)
        assert set(roles) == set(pats)
        test = {p for p, (r, _) in roles.items() if r == "test"}
        assert test == {p for p in pats if fold_of[p] == fold}
        assert not tested & test  # each patient is a test patient in one fold only
        tested |= test
        train = {p: f for p, (r, f) in roles.items() if r == "train"}
        val = {p for p, (r, _) in roles.items() if r == "val"}
        assert not (set(train) | val) & test
        for label in ("a", "b"):  # both classes reach the inner validation and the smallest fraction
            assert any(pats[p] == [label] for p in val)
            assert any(pats[p] == [label] and f == 0.5 for p, f in train.items())
        assert set(train.values()) <= {0.5, 1.0}
    assert tested == set(pats)  # every patient tested once over the K folds


def test_a_fold_too_small_for_an_inner_split_is_refused_in_one_line() -> None:
    import pytest

    pats = _patients(2, 6)
    fold_of = assign_folds(pats, folds=2, seed=0)
    with pytest.raises(ValueError, match="fold 0: .* class a; .* at least 2 per class: use fewer folds or more patients"):
        fold_roles(pats, fold_of, fold=0)
