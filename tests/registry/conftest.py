"""A real ``mlflow server`` on 127.0.0.1 (SQLite backend, local artifact destination), module-scoped,
and one small pipeline run's outputs (classifiers of two arms, synthetic stores, GAN dirs, evaluation)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lusynth_dev.ports import free_port


def _server_env() -> dict[str, str]:
    """The server's environment without MLflow's job runner (GenAI evaluation jobs: ~7 huey consumer
    processes per server, unused by lusynth; the local stack turns it off too)."""
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``mlflow server``; poll /health up to 180 s (a loaded shared machine took 50 s to start it); point MLFLOW_TRACKING_URI at it for the module."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen([exe, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, env=_server_env())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"mlflow server did not become healthy in 180 s; log: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = url
    os.environ["LUSYNTH_SYSTEM_METRICS"] = "0"  # measured separately (tests/registry/test_tracking.py)
    try:
        yield url
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
        os.environ.pop("LUSYNTH_SYSTEM_METRICS", None)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@dataclass
class PipelineOutputs:
    root: Path
    real: Path
    classifiers: list[Path]
    gans: list[Path]
    synthetic: list[Path]
    evaluation: Path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineOutputs:
    """Real outputs of every stage before export, at toy size (training untracked: the registry is under test)."""
    from lusynth.data.framestore import open_store
    from lusynth.evaluate.params import EvaluateParams
    from lusynth.evaluate.run import evaluate
    from lusynth.runtime import RunContext
    from tests.classifier import write_synthetic_store
    from tests.export import real_store, train_tiny_classifier, write_gan_dir

    root = tmp_path_factory.mktemp("pipeline")
    real = real_store(root)
    st = open_store(real)
    syn, gans = [], []
    for label in st.classes:
        idx = st.indices(split="train", label=label)
        # noisy copies of training frames: a synthetic set the privacy audit must fail
        syn.append(write_synthetic_store(root / f"syn-{label}", np.asarray(st.frames[idx]), label, fraction=1.0))
        gans.append(write_gan_dir(root / f"gan-{label}", label=label, fraction=1.0, frames_digest=st.digest))
    clfs = [train_tiny_classifier(real, root / "clf-real"), train_tiny_classifier(real, root / "clf-real-s1", seed=1),
            train_tiny_classifier(real, root / "clf-mixed", arm="real+synthetic", synthetic=tuple(syn))]
    params = EvaluateParams(n_bootstrap=50, audit_max_frames=64, kid_subsets=2, kid_subset_size=16)
    evaluate(real, root / "eval", classifier_dirs=clfs, gan_dirs=gans, synthetic_dirs=syn, params=params, progress=False,
             ctx=RunContext(track=False))
    return PipelineOutputs(root, real, clfs, gans, syn, root / "eval")
