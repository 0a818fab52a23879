"""The DVC loop as a DVC user meets it: a fresh `git clone` of this repository is a DVC repository
(committed .dvc/config with the `lusynth` S3 remote, dvc.yaml, params.yaml); `dvc repro` runs the
stages on tiny phantom data; `dvc exp run -S gan.epochs=...` re-runs the GANs and what follows them
and nothing else (not ingest, not the real-only classifier); one MLflow store serves every stage;
`dvc push` to a real S3-compatible server (SeaweedFS on 127.0.0.1) and `dvc pull` into another
clone give the same bytes.

Kept to a couple of minutes on an idle machine: one training fraction, the real and synthetic arms,
and the stages up to the classifiers (audit/evaluate/export are in the committed dvc.lock's run).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("git") is None, reason="needs git")]

ROOT = Path(__file__).resolve().parents[2]
#: the stages this test reproduces (and everything upstream of them)
TARGETS = ("train_classifier", "train_classifier_real")


def _sh(cwd: Path, *cmd: str, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res.stdout + res.stderr


def _dvc(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return _sh(cwd, sys.executable, "-m", "dvc", *args, env=env)


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh clone of this branch, its params rewritten for the tiny profile on a small grid, reproduced."""
    if shutil.which("dvc", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("dvc is not installed in this environment")
    tmp = tmp_path_factory.mktemp("dvc")
    repo = tmp / "repo"
    _sh(tmp, "git", "clone", "-q", str(ROOT), str(repo))
    for f in (".dvc/config", ".dvcignore", "dvc.yaml", "params.yaml"):
        assert (repo / f).is_file(), f"{f} is not committed"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", LUSYNTH_STAGE_CACHE="off", OMP_NUM_THREADS="1",
               GIT_AUTHOR_NAME="ci", GIT_AUTHOR_EMAIL="ci@example.invalid", GIT_COMMITTER_NAME="ci", GIT_COMMITTER_EMAIL="ci@example.invalid")
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("LUSYNTH_TRACKING_DIR", None)
    # the DVC user's way to change the grid: regenerate params.yaml (the task lists follow) and dvc.yaml
    _sh(repo, sys.executable, "-m", "lusynth_pipelines.dvc", "--root", str(repo), "--profile", "tiny",
        "--set", "experiment.fractions=1.0", "--set", "experiment.arms=real,synthetic",
        # one split: the DVC mechanics, not the protocol, are under test here (K-fold fan-out: test_stage_table, test_local_run)
        "--set", "experiment.folds=1", env=env)
    _sh(repo, "git", "commit", "-qam", "tiny grid", env=env)
    out = _dvc(repo, "repro", *TARGETS, env=env)
    _sh(repo, "git", "add", "-A", env=env)
    _sh(repo, "git", "commit", "-qm", "repro", env=env)
    return repo, env | {"REPRO_OUTPUT": out}


def test_repro_on_a_fresh_clone(clone) -> None:
    repo, env = clone
    ran = _ran(env["REPRO_OUTPUT"])
    assert ran == {"ingest", "train_gan@gan0", "train_gan@gan1", "generate@gan0", "generate@gan1",
                   "train_classifier_real@cell0", "train_classifier@cell0"}, ran
    assert "up to date" in _dvc(repo, "status", *TARGETS, env=env).lower()
    for path in ("data/frames/frames.npy", "models/gan/consolidation@1.0-g0-k0-dcgan/gan.json",
                 "data/synthetic/no_consolidation@1.0-g0-k0-dcgan/header.json",
                 "models/classifier/real@1.0-s0-r0.0-g0-k0-dcgan/classifier.json", "models/classifier/synthetic@1.0-s0-r0.0-g0-k0-dcgan/classifier.json"):
        assert (repo / path).is_file(), path
    # one MLflow store for the whole DVC run, none scattered into the outputs
    assert (repo / "runs/dvc/mlruns.db").is_file()
    assert not [p for d in ("data", "models") for p in (repo / d).rglob("mlruns.db")]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'runs/dvc/mlruns.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=100)
    assert {"train_gan", "generate", "train_classifier"} <= {r.data.tags.get("lusynth.stage") for r in runs}
    # the lock records the values each stage ran with, section by section
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    tracked = lock["train_gan@gan0"]["params"]["params.yaml"]
    assert tracked["gan.epochs"] == 1 and "gan.ngf" in tracked and not [k for k in tracked if k.startswith("gan.fastgan")]
    assert set(lock["train_classifier_real@cell0"]["params"]["params.yaml"]) == {"classifier"}


def test_push_to_s3_and_pull_into_another_clone(clone, tmp_path: Path) -> None:
    repo, env = clone
    from lusynth_dev.processes import stop_process
    from lusynth_dev.servers import create_buckets, start_seaweedfs
    from lusynth_dev.stack import DVC_REMOTE_NAME, load_or_create_credentials

    creds = load_or_create_credentials(tmp_path / "creds")
    proc, endpoint = start_seaweedfs(tmp_path / "weed", creds, log_dir=tmp_path / "logs")
    try:
        create_buckets(endpoint, creds)
        s3env = dict(env, AWS_ACCESS_KEY_ID=creds.access_key_id, AWS_SECRET_ACCESS_KEY=creds.secret_access_key, AWS_DEFAULT_REGION="us-east-1")
        # the committed config names the remote and its bucket; the endpoint is this machine's (config.local, not committed)
        assert f"remote = {DVC_REMOTE_NAME}" in (repo / ".dvc/config").read_text()
        _dvc(repo, "remote", "modify", "--local", DVC_REMOTE_NAME, "endpointurl", endpoint, env=s3env)
        assert "config.local" not in _sh(repo, "git", "status", "--porcelain", "--ignored=no", env=s3env)
        _dvc(repo, "push", "--with-deps", *TARGETS, env=s3env)
        other = tmp_path / "other"
        _sh(tmp_path, "git", "clone", "-q", str(repo), str(other), env=s3env)
        _dvc(other, "remote", "modify", "--local", DVC_REMOTE_NAME, "endpointurl", endpoint, env=s3env)
        _dvc(other, "pull", "--with-deps", *TARGETS, env=s3env)
        for out in ("data/frames", "models/classifier/real@1.0-s0-r0.0-g0-k0-dcgan"):
            assert _tree_digest(other / out) == _tree_digest(repo / out), out
    finally:
        stop_process(proc.pid, program="weed")


def test_exp_run_reruns_the_gan_side_only(clone) -> None:
    repo, env = clone
    lock_before = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    out = _dvc(repo, "exp", "run", "-S", "gan.epochs=2", *TARGETS, env=env)
    assert _ran(out) == {"train_gan@gan0", "train_gan@gan1", "generate@gan0", "generate@gan1", "train_classifier@cell0"}, out
    # the real-only classifier depends on no synthetic data: DVC did not run it, its output is the same
    assert "Stage 'train_classifier_real@cell0' didn't change, skipping" in out and "Stage 'ingest' didn't change, skipping" in out
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["train_classifier_real@cell0"]["outs"] == lock_before["train_classifier_real@cell0"]["outs"]
    assert lock["train_classifier@cell0"]["outs"] != lock_before["train_classifier@cell0"]["outs"]
    shown = json.loads(_dvc(repo, "exp", "show", "--json", env=env))
    exps = [e for commit in shown for e in (commit.get("experiments") or [])]
    values = [r["data"]["params"]["params.yaml"]["data"]["gan"]["epochs"] for e in exps for r in e.get("revs", []) if r.get("data")]
    assert 2 in values, shown
    # a FastGAN-lite knob is not a DCGAN input: with only DCGANs in the grid, nothing re-runs
    out = _dvc(repo, "exp", "run", "-S", "gan.fastgan_lr=0.002", *TARGETS, env=env)
    assert _ran(out) == set(), out
    assert "Stage 'train_gan@gan0' didn't change, skipping" in out
