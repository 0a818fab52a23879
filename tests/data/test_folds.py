"""The frame store's outer K-fold protocol: each patient tested once per repeat, the roles of a fold
partition its patients, nested fractions are subsets, and a store that cannot run it is refused."""

from __future__ import annotations

import pytest

from lusynth.data.framestore import FrameStore
from lusynth.errors import InputError, LusynthError
from lusynth.stages import run_stage


@pytest.fixture(scope="module")
def kfold_store(tmp_path_factory: pytest.TempPathFactory) -> FrameStore:
    out = tmp_path_factory.mktemp("kfold") / "frames"
    # a tiny phantom of 12 patients (2 inner training patients per class and fold) in 2 folds x 2 repeats
    over = {"experiment": {"folds": 2, "repeats": 2, "fractions": [0.5, 1.0]}, "phantom": {"patients": 12}}
    return run_stage("ingest", out, profile="tiny", overrides=over, options={"report": out.with_name("report")}).artefact


def _patients(store: FrameStore, fold: int, role: str, **kw: object) -> set[str]:
    return store.patients(store.view(fold, role, **kw))  # type: ignore[arg-type]


def test_every_patient_is_tested_exactly_once_per_repeat(kfold_store: FrameStore) -> None:
    s = kfold_store
    everyone = set(s.manifest["patient_id"].astype(str))
    assert (s.folds, s.repeats, s.n_splits) == (2, 2, 4) and len(everyone) == 12
    for repeat in range(2):
        splits = [f for f in range(s.n_splits) if s.split_of(f)[0] == repeat]
        tests = [_patients(s, f, "test") for f in splits]
        assert sum(len(t) for t in tests) == len(everyone) and set().union(*tests) == everyone
    # the repeats draw different partitions
    assert _patients(s, 0, "test") != _patients(s, 2, "test") or _patients(s, 1, "test") != _patients(s, 3, "test")


def test_a_folds_roles_partition_its_patients_and_fractions_are_nested(kfold_store: FrameStore) -> None:
    s = kfold_store
    everyone = set(s.manifest["patient_id"].astype(str))
    for f in range(s.n_splits):
        test, val, train = _patients(s, f, "test"), _patients(s, f, "val"), _patients(s, f, "train")
        assert not (test & val) and not (test & train) and not (val & train)
        assert test | val | train == everyone
        half = _patients(s, f, "train", fraction=0.5)
        assert half and half < train == _patients(s, f, "train", fraction=1.0)
        for label in s.classes:  # every class in every role (AUC and per-class GANs need it)
            for role in ("test", "val", "train"):
                assert len(s.view(f, role, label=label)) > 0, (f, role, label)
            assert len(s.view(f, "train", label=label, fraction=0.5)) > 0
        # a patient's frames never straddle roles
        rows = s.view(f, "test")
        assert set(s.manifest.iloc[rows]["patient_id"]) == test


def test_the_fold_assignment_is_stored_with_the_frames_and_is_deterministic(kfold_store: FrameStore, tmp_path) -> None:
    again = FrameStore.load(kfold_store.path)
    assert [list(again.view(f, "test")) for f in range(4)] == [list(kfold_store.view(f, "test")) for f in range(4)]
    assert kfold_store.header["cv"] == {"folds": 2, "repeats": 2, "val_share": 0.25, "seed": 0}
    with pytest.raises(LusynthError, match="fold 4 is not in this frame store"):
        kfold_store.view(4, "test")


def test_too_few_patients_for_k_folds_is_one_clear_line(tmp_path) -> None:
    with pytest.raises(InputError, match=r"5-fold cross-validation needs.*fewer than 7 patients.*lower --set experiment.folds"):
        run_stage("ingest", tmp_path / "f", profile="tiny", overrides={"experiment": {"folds": 5}},
                  options={"report": tmp_path / "r"})
    assert not (tmp_path / "f").exists()


def test_one_fold_is_the_legacy_single_split(tmp_path) -> None:
    s = run_stage("ingest", tmp_path / "f", profile="tiny", overrides={"experiment": {"folds": 1}},
                  options={"report": tmp_path / "r"}).artefact
    assert s.n_splits == 1 and "cv" not in s.header
    assert list(s.view(0, "test")) == list(s.indices(split="holdout"))
    assert list(s.view(0, "train", fraction=0.5)) == list(s.indices(split="train", fraction=0.5))
