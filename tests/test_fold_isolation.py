"""Inside an outer fold nothing but evaluation reads the fold's test patients.

The real stage functions run on the tiny phantom in 2 folds while every read of the real frame
store's pixels is recorded (the memory map is wrapped where the store is opened, so a read by
any path -- a view, a legacy split query, a whole-array copy -- is seen). GAN training (with its
checkpoint selection and fidelity embedding), generation (with its near-copy filter) and
classifier training (with its threshold) of fold 1 must read no frame of fold 1's test patients,
and must read its inner training and validation patients; evaluation then scores exactly the
test patients of each fold.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lusynth.data.framestore as framestore
from lusynth.keys import Cell, GanKey
from lusynth.runtime import RunContext
from lusynth.stages import run_stage

CTX = RunContext(track=False, cache=False, progress=False)


class _RecordingFrames:
    """A read-only frame array that logs which rows are read."""

    def __init__(self, arr: np.ndarray, log: list[np.ndarray]) -> None:
        self._arr, self._log = arr, log
        self.shape, self.dtype, self.ndim = arr.shape, arr.dtype, arr.ndim

    def __len__(self) -> int:
        return len(self._arr)

    def __getitem__(self, idx: Any) -> Any:
        first = idx[0] if isinstance(idx, tuple) else idx
        self._log.append(np.arange(len(self._arr))[first].reshape(-1))
        return self._arr[idx]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        self._log.append(np.arange(len(self._arr)))
        return np.asarray(self._arr, dtype=dtype)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch):
    """{store path: [rows read]}, filled while the fixture is active."""
    reads: dict[str, list[np.ndarray]] = {}
    real_np = framestore.np

    def load(path: Any, *args: Any, **kw: Any) -> Any:
        arr = real_np.load(path, *args, **kw)
        if kw.get("mmap_mode") and Path(path).name == framestore.FRAMES_FILE:
            return _RecordingFrames(arr, reads.setdefault(str(Path(path).parent.resolve()), []))
        return arr

    proxy = types.SimpleNamespace(**{k: getattr(real_np, k) for k in dir(real_np) if not k.startswith("__")})
    proxy.load = load
    monkeypatch.setattr(framestore, "np", proxy)
    return reads


def _patients_read(reads: dict[str, list[np.ndarray]], store: framestore.FrameStore) -> set[str]:
    rows = reads.pop(str(Path(store.path).resolve()), [])
    return store.patients(np.unique(np.concatenate(rows))) if rows else set()


def test_a_folds_test_patients_are_read_only_by_evaluation(tmp_path: Path, recorder: dict[str, list[np.ndarray]]) -> None:
    over = {"experiment": {"folds": 2, "fractions": [1.0], "arms": ["real", "real+synthetic"], "seeds": [0]}}
    frames = run_stage("ingest", tmp_path / "frames", profile="tiny", overrides=over, options={"report": tmp_path / "r"}, ctx=CTX).artefact
    recorder.clear()
    fold = 1
    test, val, train = (frames.patients(frames.view(fold, r)) for r in ("test", "val", "train"))
    assert test and val and train and not test & (val | train)

    gans = []
    for label in frames.classes:
        out = tmp_path / "gan" / label
        run_stage("train_gan", out, inputs={"frames": str(frames.path)}, key=GanKey(label, 1.0, 0, fold), profile="tiny",
                  overrides=over, ctx=CTX)
        gans.append(str(out))
    gan_read = _patients_read(recorder, frames)
    assert not gan_read & test, "GAN training / checkpoint selection read the fold's test patients"
    assert train <= gan_read and val <= gan_read  # it learns from inner train and selects on inner val

    syn = run_stage("generate", tmp_path / "syn", inputs={"gans": gans, "frames": str(frames.path)}, profile="tiny", overrides=over,
                    ctx=CTX).artefact
    assert {k.fold for k in syn.keys} == {fold}
    filt_read = _patients_read(recorder, frames)
    assert not filt_read & test, "the near-copy filter read the fold's test patients"
    assert val <= filt_read  # its threshold comes from the inner validation patients

    clf = run_stage("train_classifier", tmp_path / "clf", inputs={"frames": str(frames.path), "synthetic": [str(syn.path)]},
                    key=Cell("real+synthetic", 1.0, 0, ratio=1.0, fold=fold), profile="tiny", overrides=over, ctx=CTX).artefact
    clf_read = _patients_read(recorder, frames)
    assert not clf_read & test, "classifier training / threshold choice read the fold's test patients"
    assert clf_read == train | val and clf.meta["patient_threshold"] is not None

    # a synthetic set of another fold's GANs is refused: that GAN learned this fold's test patients
    from lusynth.errors import InputError

    with pytest.raises(InputError, match="fold 0, generator dcgan needs synthetic frames, but no synthetic set was made by those GANs"):
        run_stage("train_classifier", tmp_path / "clf0", inputs={"frames": str(frames.path), "synthetic": [str(syn.path)]},
                  key=Cell("real+synthetic", 1.0, 0, ratio=1.0, fold=0), profile="tiny", overrides=over, ctx=CTX)
    from lusynth.classifier.train import train_classifier

    with pytest.raises(InputError, match=r"GANs of fold\(s\) \[1\], but the classifier is trained in fold 0"):
        train_classifier(frames.path, tmp_path / "clf0", arm="real+synthetic", fraction=1.0, seed=0, fold=0, synthetic_dirs=[syn.path],
                         progress=False, ctx=CTX)
    recorder.clear()

    ev = run_stage("evaluate", tmp_path / "eval", inputs={"frames": str(frames.path), "classifiers": [str(clf.path)]}, profile="tiny",
                   overrides=over, ctx=CTX).artefact
    scores = ev.patient_scores()
    assert set(scores["patient_id"]) == test  # the classifier scores its own fold's test patients, and only those
    assert ev.report["protocol"]["every_patient_tested"] is False  # one fold of two evaluated: said, not hidden
    assert ev.report["protocol"]["n_patients_tested"] == len(test)
