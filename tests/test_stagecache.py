"""The stage cache: hits for identical inputs/params/code, misses when anything upstream changes;
the code part of a key covers only the modules the stage imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


def test_the_code_of_gan_training_is_what_it_imports_not_the_cli_nor_the_dev_tools() -> None:
    closure = stagecache.code_closure("lusynth.gan.train")
    assert {"lusynth.gan.train", "lusynth.models.dcgan", "lusynth", "lusynth.gan", "lusynth.models"} <= set(closure)
    assert "lusynth.tracking" in closure  # imported inside a function: still part of the stage
    assert not [m for m in closure if m == "lusynth.cli" or m.startswith("lusynth.cli.")], closure
    assert not [m for m in closure if m.startswith("lusynth_dev")], closure


@pytest.mark.parametrize("module", ["lusynth.data.ingest", "lusynth.gan.train", "lusynth.gan.generate", "lusynth.privacy.run"])
def test_the_stages_before_the_classifiers_do_not_take_in_the_classifiers_training_code(module: str) -> None:
    """An edit to the classifier's training must not re-run the ingest and every GAN (stage cache, dvc.yaml
    deps): it did while ``lusynth.classifier``'s ``__init__`` imported its training module, reached by
    every stage that reads the ``classifier`` or ``experiment`` parameters."""
    closure = set(stagecache.code_closure(module))
    assert "lusynth.classifier.params" in closure or module == "lusynth.privacy.run"
    assert not closure & {"lusynth.classifier.train", "lusynth.models.classifier", "lusynth.metrics.classification"}, module


def test_a_misspelt_stage_module_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'lusynth.gan.trian'.*no such module"):
        stagecache.code_digest("lusynth.gan.trian")


def _digest_in(src: Path, *modules: str) -> str:
    """``code_digest(*modules)`` computed by a fresh interpreter that imports lusynth from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = f"from lusynth.stagecache import code_digest; print(code_digest(*{list(modules)!r}))"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return res.stdout.strip()


def test_gan_training_key_ignores_cli_edits_and_follows_model_edits(tmp_path: Path) -> None:
    package = tmp_path / "src" / "lusynth"
    shutil.copytree(Path(stagecache.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = _digest_in(package.parent, "lusynth.gan.train")
    assert before == stagecache.code_digest("lusynth.gan.train")  # the same code digests the same anywhere
    with open(package / "cli" / "__init__.py", "a") as fh:
        fh.write("# an edit to the command line, which training never imports\n")
    assert _digest_in(package.parent, "lusynth.gan.train") == before
    with open(package / "models" / "dcgan.py", "a") as fh:
        fh.write("# an edit to the GAN's model\n")
    assert _digest_in(package.parent, "lusynth.gan.train") != before


def test_ingest_cache_follows_the_pseudonym_key_without_storing_it(tmp_path, monkeypatch) -> None:
    """Issue 15, item 4: a new key is a miss with other patient ids; the old key hits again; the key is never stored."""
    from lusynth.data.framestore import open_store
    from lusynth.runtime import RunContext
    from lusynth.stages import run_stage

    key_a, key_b = "first-pseudonym-key-0123456789", "second-pseudonym-key-9876543210"

    def ingest(key: str, out: str):
        monkeypatch.setenv("LUSYNTH_PSEUDONYM_KEY", key)
        outcome = run_stage("ingest", tmp_path / out, profile="tiny", ctx=RunContext(progress=False))
        return outcome.cached, set(open_store(outcome.out).manifest.patient_id)

    cached_a, ids_a = ingest(key_a, "a")
    cached_b, ids_b = ingest(key_b, "b")
    cached_a2, ids_a2 = ingest(key_a, "a2")
    assert (cached_a, cached_b, cached_a2) == (False, False, True)
    assert ids_a.isdisjoint(ids_b) and ids_a2 == ids_a
    cache_bytes = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert cache_bytes and key_a.encode() not in cache_bytes and key_b.encode() not in cache_bytes


def test_a_side_output_marker_without_a_key_is_hashed_by_content(tmp_path: Path) -> None:
    # `generate --png DIR` marks DIR as its output (lusynth.outputs.mark_output) but DIR is no cached stage
    # output: used as an input (e.g. `lusynth audit --synthetic DIR`) it is keyed by its bytes, not a crash
    from lusynth.outputs import mark_output
    from lusynth.stagecache import input_digest

    d = tmp_path / "png"
    (d / "a").mkdir(parents=True)
    (d / "a" / "1.png").write_bytes(b"one")
    mark_output(d, "generate.png")
    first = input_digest(d)
    (d / "a" / "1.png").write_bytes(b"two")
    assert input_digest(d) != first and not first.startswith("stage:")
