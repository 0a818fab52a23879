"""The DVC loop: `dvc repro` of the project's dvc.yaml on tiny phantom data in a temp git repo,
`dvc exp run -S`, metrics/plots, and a push to a real S3-compatible server (SeaweedFS on
127.0.0.1) pulled into a fresh clone byte-identical."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _sh(cwd: Path, *cmd: str, env: dict | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res.stdout


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "mlruns" not in p.name}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory):
    """A git+DVC repository holding the project's dvc.yaml, params.yaml (tiny, one fraction) and profiles."""
    repo = tmp_path_factory.mktemp("dvc") / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    # the stages depend on the code they run: the repository holds the library's sources
    shutil.copytree(ROOT / "src" / "lusynth", repo / "src" / "lusynth", ignore=shutil.ignore_patterns("__pycache__"))
    from lusynth_pipelines.dvc import TASKS_MARKER, render_params

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = "tiny"
    params["experiment"]["fractions"] = [1.0]
    params["experiment"]["folds"] = 2  # the tiny profile's K: every stage below fans out over 2 outer folds
    for name in ("gans", "cells"):
        del params[name]
    # the task lists DVC's matrix runs over follow the changed grid
    (repo / "params.yaml").write_text(render_params(yaml.safe_dump(params, sort_keys=False) + TASKS_MARKER + "\n"))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", LUSYNTH_STAGE_CACHE="off",
               MLFLOW_TRACKING_URI=f"sqlite:///{repo.parent / 'mlruns.db'}")
    _sh(repo, "git", "init", "-q")
    _sh(repo, "git", "config", "user.email", "ci@example.invalid")
    _sh(repo, "git", "config", "user.name", "ci")
    _sh(repo, sys.executable, "-m", "dvc", "init", "-q")
    (repo / ".gitignore").write_text("mlruns.db\n__pycache__/\n")
    _sh(repo, "git", "add", "-A")
    _sh(repo, "git", "commit", "-qm", "pipeline")
    _sh(repo, sys.executable, "-m", "dvc", "repro", env=env)
    return repo, env


def test_repro_builds_every_stage_and_reports(repo) -> None:
    repo, env = repo
    status = _sh(repo, sys.executable, "-m", "dvc", "status", env=env)
    assert "up to date" in status.lower()
    for path in ("data/frames/frames.npy", "models/gan/consolidation@1.0-g0-k0/gan.json",
                 "data/synthetic/no_consolidation@1.0-g0-k0/header.json",
                 "models/classifier/real@1.0-s0-r0.0-g0-k0/classifier.json", "models/classifier/real+aug@1.0-s0-r0.0-g0-k0/classifier.json",
                 "models/classifier/real@1.0-s0-r0.0-g0-k1/classifier.json", "models/gan/consolidation@1.0-g0-k1/gan.json",
                 "reports/evaluation/report.html", "reports/metrics.json",
                 "models/onnx/export.json"):
        assert (repo / path).is_file(), path
    metrics = _sh(repo, sys.executable, "-m", "dvc", "metrics", "show", "--json", env=env)
    assert "auc_real_f1" in metrics
    plots = _sh(repo, sys.executable, "-m", "dvc", "plots", "show", "--json", env=env)
    assert "learning_curve.csv" in plots and "roc.csv" in plots


def test_exp_run_with_a_changed_parameter(repo) -> None:
    repo, env = repo
    out = _sh(repo, sys.executable, "-m", "dvc", "exp", "run", "-S", "+generate.n_per_class=8", env=env)
    # the GANs do not depend on the generate section: DVC skips them; generate reruns with the new value
    assert "Stage 'train_gan@gan0' didn't change, skipping" in out  # gans[0] is consolidation at fraction 1
    assert "Running stage 'generate@gan0'" in out
    from lusynth.gan.generate import SyntheticSet

    assert SyntheticSet.load(repo / "data/synthetic/consolidation@1.0-g0-k0").n_frames == 8
    shown = _sh(repo, sys.executable, "-m", "dvc", "exp", "show", "--json", env=env)
    assert "n_per_class" in shown


def test_push_to_s3_and_pull_into_a_fresh_clone(repo, tmp_path) -> None:
    repo, env = repo
    from lusynth_dev.processes import stop_process
    from lusynth_dev.servers import create_buckets, start_seaweedfs
    from lusynth_dev.stack import load_or_create_credentials

    creds = load_or_create_credentials(tmp_path / "creds")
    proc, endpoint = start_seaweedfs(tmp_path / "weed", creds, log_dir=tmp_path / "logs")
    try:
        create_buckets(endpoint, creds)
        s3env = dict(env, AWS_ACCESS_KEY_ID=creds.access_key_id, AWS_SECRET_ACCESS_KEY=creds.secret_access_key,
                     AWS_DEFAULT_REGION="us-east-1")
        dvc = [sys.executable, "-m", "dvc"]
        _sh(repo, *dvc, "remote", "add", "-f", "-d", "s3remote", "s3://lusynth-data/dvc", env=s3env)
        _sh(repo, *dvc, "remote", "modify", "s3remote", "endpointurl", endpoint, env=s3env)
        _sh(repo, "git", "add", "-A")
        _sh(repo, "git", "commit", "-qm", "results + remote")
        _sh(repo, *dvc, "push", env=s3env)
        clone = tmp_path / "clone"
        _sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
        _sh(clone, *dvc, "pull", env=s3env)
        for out in ("data/frames", "models/classifier", "reports/evaluation"):
            assert _tree_digest(clone / out) == _tree_digest(repo / out), out
    finally:
        stop_process(proc.pid, program="weed")
