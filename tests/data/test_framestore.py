"""The frame store: round trip, determinism, atomicity, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from lusynth.data.framestore import FrameStoreWriter, open_store, write_store
from lusynth.errors import FrameStoreError


def _rows(n: int) -> list[dict]:
    return [
        {"patient_id": f"p{i % 3}", "video_id": f"v{i % 4}", "frame_index": i, "label": "ab" if i % 2 else "norm",
         "split": ["train", "val", "holdout"][i % 3], "train_fraction": 0.5 if i % 3 == 0 else "", "source": "image"}
        for i in range(n)
    ]


def test_round_trip_and_selection(tmp_path) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (12, 16, 16), dtype=np.uint8)
    header = write_store(tmp_path / "s", frames, _rows(12), kind="real", classes=["ab", "norm"], positive_class="ab")
    store = open_store(tmp_path / "s")
    assert isinstance(store.frames, np.memmap)
    np.testing.assert_array_equal(store.frames, frames)
    assert header["n_frames"] == 12 and header["counts"]["train"] == {"ab": 2, "norm": 2}
    assert list(store.indices(split="train", fraction=0.5)) == [0, 3, 6, 9]
    assert list(store.indices(split="val", label="ab")) == [1, 7]
    assert store.labels_as_int(np.array([0, 1])).tolist() == [0, 1]
    with pytest.raises(FrameStoreError, match="no class 'x'"):
        store.indices(label="x")


def test_byte_identical(tmp_path) -> None:
    frames = np.random.default_rng(1).integers(0, 256, (5, 8, 8), dtype=np.uint8)
    for name in ("a", "b"):
        write_store(tmp_path / name, frames, _rows(5), kind="real", classes=["ab", "norm"])
    for f in ("frames.npy", "manifest.csv", "header.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    # a changed pixel changes the digest
    frames[0, 0, 0] ^= 1
    h = write_store(tmp_path / "c", frames, _rows(5), kind="real", classes=["ab", "norm"])
    assert h["content_digest"] != open_store(tmp_path / "a").digest


def test_failed_write_leaves_previous_store(tmp_path) -> None:
    frames = np.zeros((3, 8, 8), np.uint8)
    write_store(tmp_path / "s", frames, _rows(3), kind="real", classes=["ab", "norm"])
    before = (tmp_path / "s" / "header.json").read_bytes()
    with pytest.raises(ValueError):
        with FrameStoreWriter(tmp_path / "s", image_size=8) as w:
            w.append(np.zeros((8, 8), np.uint8), _rows(1)[0])
            w.append(np.zeros((9, 9), np.uint8), _rows(1)[0])  # wrong shape
    assert (tmp_path / "s" / "header.json").read_bytes() == before
    assert not list(tmp_path.glob(".tmp-*"))


def test_open_errors(tmp_path) -> None:
    with pytest.raises(FrameStoreError, match="not a frame store"):
        open_store(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "frames.npy").write_bytes(b"")
    with pytest.raises(FrameStoreError, match="missing manifest.csv, header.json"):
        open_store(tmp_path / "half")
