"""Checkpoint mirror: a GAN run killed on one "pod" resumes on a fresh one from its mirror (a real
S3 server, SeaweedFS), bit-identical to an uninterrupted run; unchanged checkpoints are not sent
twice; an unreachable store is an error, never an empty mirror."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lusynth.gan.checkpoint import load_checkpoint
from lusynth.gan.mirror import CheckpointMirror, mirror_uri
from lusynth.gan.train import train_gan
from lusynth.runtime import RunContext, temporary_env
from lusynth.stages import run_stage
from lusynth.storage import digests
from lusynth.storage.s3 import StorageError, client, upload_dir
from lusynth_dev.processes import stop_process
from lusynth_dev.servers import Credentials, start_seaweedfs
from tests.gan import tiny_params

LABEL = "consolidation"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _shared_tracking(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp() / 'gan-mirror-mlruns.db'}")


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real S3 server on 127.0.0.1 with a bucket; yields the env a client needs."""
    creds = Credentials("MIRRORTESTKEY", "mirror-test-secret-1a2b3c")
    proc, endpoint = start_seaweedfs(tmp_path_factory.mktemp("weed"), creds)
    env = {"LUSYNTH_S3_ENDPOINT_URL": endpoint, **creds.env()}
    try:
        with temporary_env(env):
            client().create_bucket(Bucket="gans")
        yield env
    finally:
        stop_process(proc.pid)


@pytest.fixture
def s3_env(seaweed: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in seaweed.items():
        monkeypatch.setenv(k, v)
    return seaweed


def _fake_run(out: Path, step_bytes: bytes = b"step") -> Path:
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    (out / "checkpoints" / "last.pt").write_bytes(os.urandom(4096))
    (out / "checkpoints" / "step_00000010.pt").write_bytes(step_bytes * 1000)
    (out / "embedding.pt").write_bytes(b"embedding" * 100)
    (out / "samples" / "step_00000010.png").write_bytes(b"png")
    (out / "mlruns.db").write_bytes(b"local tracking store")
    return out


@pytest.mark.parametrize("kind", ["dir", "s3"])
def test_push_pull_round_trip_carries_exactly_the_resumable_state(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "s3":
        request.getfixturevalue("s3_env")
    uri = "s3://gans/unit/roundtrip" if kind == "s3" else str(tmp_path / "volume" / "gan")
    m = CheckpointMirror(uri)
    assert not m.exists() and not m.pull(tmp_path / "empty"), "an empty mirror restores nothing"
    out = _fake_run(tmp_path / "pod1")
    m.push(out)
    assert m.exists()
    fresh = tmp_path / "pod2"
    assert m.pull(fresh)
    got = sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file())
    assert got == ["checkpoints/last.pt", "checkpoints/step_00000010.pt", "embedding.pt"]
    for rel in got:
        assert (fresh / rel).read_bytes() == (out / rel).read_bytes()
    assert not list(fresh.glob(".mirror-*")) and not list(out.glob(".mirror-*")), "no staging folder left behind"


@pytest.mark.parametrize("kind", ["dir", "s3"])
def test_push_sends_only_what_changed(kind: str, tmp_path: Path, request: pytest.FixtureRequest,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "s3":
        request.getfixturevalue("s3_env")
    uri = "s3://gans/unit/incremental" if kind == "s3" else str(tmp_path / "volume" / "gan")
    out = _fake_run(tmp_path / "pod")
    m = CheckpointMirror(uri)
    first = m.push(out)
    assert first["bytes_sent"] == first["bytes"]
    (out / "checkpoints" / "last.pt").write_bytes(os.urandom(4096))  # the next epoch: only last.pt changes
    hashed: list[str] = []
    real_sha = digests.file_sha256
    monkeypatch.setattr(digests, "file_sha256", lambda p: hashed.append(Path(p).name) or real_sha(p))
    second = m.push(out)
    assert second["bytes_sent"] == 4096 < second["bytes"]
    if kind == "s3":
        assert hashed == ["last.pt"], "unchanged files are not read again to learn they are unchanged"
    fresh = tmp_path / "fresh"
    m.pull(fresh)  # over S3, download_dir verifies every size and SHA-256 against the manifest
    assert (fresh / "checkpoints" / "last.pt").read_bytes() == (out / "checkpoints" / "last.pt").read_bytes()
    (out / "checkpoints" / "step_00000010.pt").unlink()  # pruned checkpoints disappear from the mirror too
    m.push(out)
    if kind == "s3":
        names = [o["Key"] for o in client().list_objects_v2(Bucket="gans", Prefix="unit/incremental/").get("Contents", [])]
    else:
        names = [p.as_posix() for p in Path(uri).rglob("*") if p.is_file()]
    assert names and not any(k.endswith("step_00000010.pt") for k in names)


def test_reuse_unchanged_still_uploads_a_same_size_file_with_new_bytes(s3_env: dict[str, str], tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.bin").write_bytes(b"A" * 1000)
    upload_dir(d, "s3://gans/unit/samesize", reuse_unchanged=True)
    (d / "a.bin").write_bytes(b"B" * 1000)
    info = upload_dir(d, "s3://gans/unit/samesize", reuse_unchanged=True)
    assert info["bytes_uploaded"] == 1000 and info["files_reused"] == 0


def test_an_unreachable_store_is_an_error_not_an_empty_mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LUSYNTH_S3_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("LUSYNTH_S3_MAX_ATTEMPTS", "1")
    with pytest.raises(StorageError):
        CheckpointMirror("s3://gans/unreachable").pull(tmp_path / "out")


_KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    import lusynth.gan.step as S
    import lusynth.gan.train as T
    from tests.gan import tiny_params
    store, out, kill_at, overrides, mirror = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
    calls = [0]
    bce = S._bce
    def killing_bce(logits, target):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # the pod dies: no cleanup
        return bce(logits, target)
    S._bce = killing_bce
    T.train_gan(store, out, label="consolidation", fraction=1.0, params=tiny_params(**overrides), progress=False,
                resume=True, mirror=mirror)
    """
)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    s = load_checkpoint(out / "checkpoints" / "last.pt")
    return {**{f"g.{k}": v for k, v in s["generator"].items()}, **{f"d.{k}": v for k, v in s["discriminator"].items()},
            **{f"ema.{k}": v for k, v in (s["generator_ema"] or {}).items()}}


@pytest.mark.slow
def test_killed_pod_resumes_on_a_fresh_one_from_the_s3_mirror(phantom_store: Path, s3_env: dict[str, str], tmp_path: Path) -> None:
    overrides = {"epochs": 4, "eval_every": 2, "ema_decay": 0.9}
    ref = tmp_path / "uninterrupted"
    train_gan(phantom_store, ref, label=LABEL, fraction=1.0, params=tiny_params(**overrides), progress=False)
    steps = json.loads((ref / "gan.json").read_text())["steps"]
    per_epoch = steps // overrides["epochs"]
    # 3 BCE calls per step; a random one after the first mirror push (the evaluation after epoch 2; with
    # the default checkpoint_seconds a tiny run writes its state only there and at the end) and before the end
    kill_at = random.SystemRandom().randint(3 * 2 * per_epoch + 1, 3 * steps - 1)
    mirror = "s3://gans/runs/killed"
    pod1 = tmp_path / "pod1"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(phantom_store), str(pod1), str(kill_at), json.dumps(overrides), mirror],
        cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, f"kill_at={kill_at}: {proc.stderr[-2000:]}"
    shutil.rmtree(pod1)  # the retry runs on a new pod: nothing local survives
    pod2 = tmp_path / "pod2"
    train_gan(phantom_store, pod2, label=LABEL, fraction=1.0, params=tiny_params(**overrides), progress=False,
              resume=True, mirror=mirror)
    summary = json.loads((pod2 / "gan.json").read_text())
    assert summary["mirror"]["restored"] and summary["resumed"], summary.get("mirror")
    wa, wb = _weights(ref), _weights(pod2)
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"kill at BCE call {kill_at}/{3 * steps}: {differ[:5]} differ"
    assert json.loads((ref / "fidelity_history.json").read_text()) == json.loads((pod2 / "fidelity_history.json").read_text())
    assert (pod2 / json.loads((pod2 / "chosen.json").read_text())["checkpoint"]).is_file()


def test_stage_names_each_gan_mirror_by_its_stage_key(phantom_store: Path, tmp_path: Path) -> None:
    root = tmp_path / "volume"
    overrides = {"epochs": 1, "eval_every": 1, "ngf": 4, "ndf": 4, "n_eval": 16, "embedding_epochs": 1}
    ctx = RunContext(progress=False, cache=False)
    for out, seed in ((tmp_path / "a", 0), (tmp_path / "b", 1)):
        run_stage("train_gan", out, inputs={"frames": phantom_store}, key={"label": LABEL, "fraction": 1.0},
                  overrides={"gan": {**overrides, "seed": seed}}, options={"checkpoint_mirror": str(root)}, ctx=ctx)
    mirrors = sorted(p.name for p in root.iterdir())
    assert len(mirrors) == 2 and all(m.startswith("consolidation-1-") for m in mirrors), mirrors
    info = json.loads((tmp_path / "a" / "gan.json").read_text())["mirror"]
    assert info["pushes"] == 1 and not info["restored"] and Path(info["uri"]).parent == root
    assert mirror_uri("s3://b/p/", "f" * 64, "B-lines / pleura", 0.5) == "s3://b/p/B-lines-pleura-0.5-ffffffffffffffff"
