"""The paper-size GAN on a GPU: one prepared run for a lent GPU machine (issue: GAN stage).

Trains the ``paper`` configuration (256x256x1, ngf = ndf = 64, batch 16, the paper's lr) with the
exact networks, optimisers and settings of ``train_gan`` (``build_networks``, bf16 autocast and
channels_last on CUDA, deterministic cuDNN as ``train_gan`` sets it) for a few hundred steps on
phantom frames, and reports img/s, achieved TFLOP/s (FlopCounterMode count per step) and MFU
against a matmul peak measured on the same device (bf16 and fp32), then runs ``train_gan`` itself
for one short epoch at 256 to exercise its CUDA paths end to end (evaluation, sampling,
checkpoints). Writes JSON to ``--out`` (default ``$OUT/gpu_paper.json`` when ``$OUT`` is set).

    python benchmarks/gpu_paper.py                      # on the GPU machine: ~3-5 min
    python benchmarks/gpu_paper.py --device cpu --config demo --steps 3 --warmup 1 --no-train-gan   # smoke test here
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lusynth.data.phantom import PhantomParams, render_frames
from lusynth.gan.params import GanParams
from lusynth.gan.step import _to_unit, build_networks, train_step
from lusynth.models.dcgan import DCGANConfig, flops_per_image
from lusynth.runtime import autocast_for, configure_threads, resolve_precision, select_device

CONFIGS = {"paper": {"image_size": 256, "ngf": 64, "ndf": 64}, "demo": {"image_size": 64, "ngf": 16, "ndf": 16}}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype: torch.dtype, n: int) -> float:
    """Best of 10 ``n^3`` matmuls, in TFLOP/s."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    best = 0.0
    for _ in range(10):
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best / 1e12


def frames(n: int, size: int) -> np.ndarray:
    from PIL import Image

    raw, _ = render_frames(PhantomParams(patients=max(2, n // 16), clips_per_patient=2, frames_per_clip=8))
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in raw[:n]])


def loop(cfg_name: str, device: str, steps: int, warmup: int) -> dict:
    c = CONFIGS[cfg_name]
    params = GanParams(ngf=c["ngf"], ndf=c["ndf"], lr_g=1e-4, lr_d=5e-5, batch_size=16, diffaugment="", ema_decay=0.0)
    cfg = DCGANConfig(image_size=c["image_size"], ngf=c["ngf"], ndf=c["ndf"], fast_cpu=params.fast_cpu)
    cuda = device.startswith("cuda")
    if cuda:  # as train_gan sets them
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    precision = resolve_precision(params.precision, device)
    autocast = autocast_for(device, precision)
    torch.manual_seed(0)
    g, d, opt_g, opt_d, mf = build_networks(cfg, params, device)
    data = torch.from_numpy(frames(256, c["image_size"])).to(device)
    bs, n = params.batch_size, len(data)
    done, t0, losses = 0, 0.0, []
    while done < warmup + steps:
        perm = torch.randperm(n, device=device)
        for i in range(0, n - bs + 1, bs):
            if done == warmup:
                _sync(device)
                t0 = time.perf_counter()
            real = _to_unit(data[perm[i : i + bs]]).contiguous(memory_format=mf)
            loss_d, loss_g, _, _ = train_step(g, d, opt_g, opt_d, real, nz=cfg.nz, autocast=autocast)
            losses.append((loss_d, loss_g))
            done += 1
            if done == warmup + steps:
                break
    _sync(device)
    dt = time.perf_counter() - t0
    ld, lg = (float(x) for x in losses[-1])
    flop_step = flops_per_image(cfg)["train_step"] * bs
    return {
        "config": c, "device": device, "dtype": "bf16 autocast" if precision == "bf16" else "float32", "batch": bs,
        "steps": steps, "warmup": warmup, "seconds": dt, "images_per_second": steps * bs / dt,
        "tflop_per_step": flop_step / 1e12, "tflops_achieved": flop_step * steps / dt / 1e12,
        "final_loss_d": ld, "final_loss_g": lg, "finite": bool(np.isfinite([ld, lg]).all()),
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }


def train_gan_smoke(cfg_name: str, tmp: Path) -> dict:
    """``train_gan`` itself for one epoch at the config's size on a small phantom store."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.gan builds the store
    from tests.gan import make_phantom_store

    from lusynth.gan.train import train_gan

    c = CONFIGS[cfg_name]
    store = make_phantom_store(tmp / "store", patients=12, clips=2, frames=8, size=c["image_size"])
    params = GanParams(ngf=c["ngf"], ndf=c["ndf"], lr_g=1e-4, lr_d=5e-5, epochs=1, eval_every=1, n_eval=32, embedding_epochs=1)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlruns.db'}")
    t = time.perf_counter()
    r = train_gan(store, tmp / "gan", label="consolidation", fraction=1.0, params=params, progress=False)
    return {"device": r.device, "steps": r.steps, "seconds": time.perf_counter() - t, "images_per_second": r.images_per_second,
            "chosen": r.chosen["checkpoint"], "nn1_embed": r.chosen["metrics"].get("nn1_embed")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=list(CONFIGS), default="paper")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--no-train-gan", action="store_true", help="skip the end-to-end train_gan epoch")
    ap.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) / "gpu_paper.json" if os.environ.get("OUT") else None)
    a = ap.parse_args()
    configure_threads()
    device = select_device(a.device)
    res: dict = {"torch": torch.__version__, "device": device}
    if device.startswith("cuda"):
        res["gpu"] = torch.cuda.get_device_name(0)
        res["matmul_peak_tflops"] = {"bf16": matmul_peak(device, torch.bfloat16, 8192), "fp32": matmul_peak(device, torch.float32, 8192)}
    else:
        res["matmul_peak_tflops"] = {"bf16": matmul_peak(device, torch.bfloat16, 2048), "fp32": matmul_peak(device, torch.float32, 2048)}
    print(json.dumps(res), flush=True)
    res["loop"] = loop(a.config, device, a.steps, a.warmup)
    peak = res["matmul_peak_tflops"]["bf16" if res["loop"]["dtype"].startswith("bf16") else "fp32"]
    res["loop"]["mfu_vs_matmul"] = res["loop"]["tflops_achieved"] / peak
    lp = res["loop"]
    print(f"{a.config} on {device}: {lp['images_per_second']:.1f} img/s, {lp['tflops_achieved']:.2f} TFLOP/s, "
          f"MFU {lp['mfu_vs_matmul']:.0%} of the measured {peak:.1f} TFLOP/s matmul ({lp['dtype']}); losses finite: {lp['finite']}",
          flush=True)
    if not a.no_train_gan:
        with tempfile.TemporaryDirectory(prefix="gpu-paper-") as tmp:
            res["train_gan"] = train_gan_smoke(a.config, Path(tmp))
        print(f"train_gan: {json.dumps(res['train_gan'])}", flush=True)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
