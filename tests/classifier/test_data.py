"""Arms, fractions, synthetic:real ratio and balanced sampling."""

from pathlib import Path

import numpy as np
import pytest

from lusynth.classifier.data import balanced_epoch, training_frames
from lusynth.data.framestore import open_store
from lusynth.errors import InputError
from tests.classifier import write_real_store, write_synthetic_store


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    real = open_store(write_real_store(d / "real"))
    out = {"real": d / "real"}
    for label in real.classes:
        idx = real.indices(split="train", label=label, fraction=0.5)
        out[label] = write_synthetic_store(d / f"syn-{label}", np.asarray(real.frames[idx]), label, fraction=0.5)
    return out


def test_balanced_epoch_oversamples_the_minority_and_alternates() -> None:
    labels = np.array([1] * 3 + [0] * 10)
    idx = balanced_epoch(labels, np.random.default_rng(0))
    assert len(idx) == 20
    assert (labels[idx[0::2]] == 1).all() and (labels[idx[1::2]] == 0).all()
    assert sorted(set(idx[1::2])) == list(range(3, 13))  # every majority frame once


def test_arms_fractions_and_ratio(stores: dict[str, Path]) -> None:
    real = open_store(stores["real"])
    syn = [open_store(stores[c]) for c in real.classes]
    half = training_frames(real, arm="real", fraction=0.5)
    full = training_frames(real, arm="real", fraction=1.0)
    assert 0 < len(half) < len(full)
    assert set(half.source) == {"real"}
    mixed = training_frames(real, arm="real+synthetic", fraction=0.5, synthetic=syn, ratio=0.5, seed=1)
    assert mixed.counts["synthetic"] == {c: round(0.5 * n) for c, n in half.counts["real"].items()}
    only = training_frames(real, arm="synthetic", fraction=0.5, synthetic=syn, synthetic_max_per_class=5)
    # real+aug trains on the real frames (augmentation happens in training) and reads no synthetic store
    aug = training_frames(real, arm="real+aug", fraction=0.5, synthetic=syn)
    assert set(aug.source) == {"real"} and np.array_equal(aug.frames, half.frames)
    assert set(only.source) == {"synthetic"} and len(only) == 10
    # no holdout or val frame ever enters a training set
    hold = {real.manifest["content_hash"][i] for i in real.indices(split="holdout")}
    from lusynth.data.framestore import frame_hash
    assert not hold & {frame_hash(f) for f in full.frames}


def test_synthetic_stores_of_another_fraction_are_refused(stores: dict[str, Path]) -> None:
    real = open_store(stores["real"])
    syn = [open_store(stores[c]) for c in real.classes]
    with pytest.raises(InputError, match="fraction 0.5"):
        training_frames(real, arm="real+synthetic", fraction=1.0, synthetic=syn)
    with pytest.raises(InputError, match="needs synthetic"):
        training_frames(real, arm="synthetic", fraction=0.5)
