"""Where one DCGAN training step spends its time: torch.profiler over the step of ``bench_gan.py``.

Builds the networks, kernels and optimisers of :func:`lusynth.gan.step.build_networks`, runs
``--warmup`` steps, then profiles ``--steps`` steps of :func:`lusynth.gan.step.train_step` (random
frames in [-1, 1]; the data path is not the subject) and prints the ops by self CPU time. Not a test.

    .venv/bin/python benchmarks/profile_gan_step.py --config demo --precision bf16 --steps 20
"""

from __future__ import annotations

import argparse
import time

import torch

from lusynth.gan.params import GanParams
from lusynth.gan.step import build_networks, train_step
from lusynth.models.dcgan import DCGANConfig
from lusynth.runtime import autocast_for, configure_threads, retain_freed_memory

CONFIGS = {"demo": {"image_size": 64, "ngf": 16, "ndf": 16}, "paper": {"image_size": 256, "ngf": 64, "ndf": 64}}


def main() -> None:
    ap = argparse.ArgumentParser(description="torch.profiler over the DCGAN training step")
    ap.add_argument("--config", default="demo", choices=list(CONFIGS))
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--stock", action="store_true", help="fast_cpu=False")
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--shapes", action="store_true", help="group by input shapes")
    a = ap.parse_args()
    threads = configure_threads()
    c = CONFIGS[a.config]
    params = GanParams(ngf=c["ngf"], ndf=c["ndf"], lr_g=1e-4, lr_d=5e-5, fast_cpu=not a.stock, precision=a.precision)
    cfg = DCGANConfig(image_size=c["image_size"], ngf=c["ngf"], ndf=c["ndf"], fast_cpu=not a.stock)
    autocast = autocast_for("cpu", a.precision)
    torch.manual_seed(0)
    g, d, opt_g, opt_d, mf = build_networks(cfg, params, "cpu")
    real = (torch.rand(16, 1, c["image_size"], c["image_size"]) * 2 - 1).contiguous(memory_format=mf)

    def step() -> None:
        out = train_step(g, d, opt_g, opt_d, real, nz=cfg.nz, autocast=autocast)
        _ = [t.float().mean().item() for t in out]

    with retain_freed_memory():
        for _ in range(a.warmup):
            step()
        t = time.perf_counter()
        for _ in range(a.steps):
            step()
        dt = time.perf_counter() - t
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=a.shapes) as prof:
            for _ in range(a.steps):
                step()
    print(f"{a.config} {a.precision} fast_cpu={not a.stock} threads={threads}: {16 * a.steps / dt:.1f} img/s unprofiled")
    print(prof.key_averages(group_by_input_shape=a.shapes).table(sort_by="self_cpu_time_total", row_limit=a.rows, max_name_column_width=40,
                                                                 max_shapes_column_width=60))


if __name__ == "__main__":
    main()
