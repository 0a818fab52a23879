"""The stage cache: hits for identical inputs/params/code, misses when anything upstream changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lusynth import stagecache
from lusynth.atomic import atomic_dir


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LUSYNTH_STAGE_CACHE", str(tmp_path / "cache"))


def _stage(calls: list, value: int):
    def run(out: Path) -> int:
        calls.append(value)
        with atomic_dir(out) as tmp:
            np.save(tmp / "x.npy", np.full(3, value))
            (tmp / "info.json").write_text(json.dumps({"v": value}))
        return value

    return run


def test_hit_miss_and_chaining(tmp_path) -> None:
    calls: list[int] = []
    src = tmp_path / "input.txt"
    src.write_text("data v1")
    res, hit = stagecache.run_cached("a", tmp_path / "o1", params={"p": 1}, inputs=[src], run=_stage(calls, 1))
    assert (res, hit, calls) == (1, False, [1])
    # identical inputs and params, another output dir: restored, not rerun
    res, hit = stagecache.run_cached("a", tmp_path / "o2", params={"p": 1}, inputs=[src], run=_stage(calls, 1))
    assert hit and res is None and calls == [1]
    assert np.load(tmp_path / "o2" / "x.npy").tolist() == [1, 1, 1]
    assert (tmp_path / "o2" / stagecache.STAGE_FILE).is_file()
    # a changed parameter reruns
    _, hit = stagecache.run_cached("a", tmp_path / "o3", params={"p": 2}, inputs=[src], run=_stage(calls, 2))
    assert not hit and calls == [1, 2]
    # a downstream stage keyed on o1 hits for o2 (same key) and misses for o3
    k1 = stagecache.stage_key("b", {}, [tmp_path / "o1"])
    assert k1 == stagecache.stage_key("b", {}, [tmp_path / "o2"])
    assert k1 != stagecache.stage_key("b", {}, [tmp_path / "o3"])
    # changed input bytes change the key
    src.write_text("data v2")
    _, hit = stagecache.run_cached("a", tmp_path / "o4", params={"p": 1}, inputs=[src], run=_stage(calls, 1))
    assert not hit


def test_off(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LUSYNTH_STAGE_CACHE", "off")
    calls: list[int] = []
    for i in range(2):
        _, hit = stagecache.run_cached("a", tmp_path / f"o{i}", params={}, run=_stage(calls, 1))
        assert not hit
    assert calls == [1, 1]


def test_failed_stage_leaves_no_entry(tmp_path) -> None:
    def boom(out: Path) -> None:
        raise RuntimeError("stage failed")

    with pytest.raises(RuntimeError):
        stagecache.run_cached("a", tmp_path / "o", params={}, run=boom)
    assert not any((tmp_path / "cache").rglob(stagecache.STAGE_FILE))
