"""The prepared GPU run (benchmarks/gpu_paper.py) runs end to end here on the CPU at demo size, so it
works the day a GPU machine is lent; asking for CUDA where there is none is a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_paper.py"


def test_gpu_script_smoke_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--config", "demo", "--steps", "2", "--warmup", "1",
                           "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    loop = r["loop"]
    assert loop["device"] == "cpu" and loop["steps"] == 2 and loop["finite"] and loop["images_per_second"] > 0
    assert 0 < loop["mfu_vs_matmul"] < 2 and loop["tflop_per_step"] > 0
    assert r["train_gan"]["device"] == "cpu" and r["train_gan"]["steps"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_script_without_a_gpu_says_so(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--no-train-gan"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr
