"""DCGAN training throughput: lusynth's loop vs the reference implementation's, side by side.

For each configuration (``demo``: 64x64, ngf = ndf = 16; ``paper``: 256x256, ngf = ndf = 64; both
batch 16) it measures, each in its own fresh process, one after the other on the same machine:

* ``lusynth``: :func:`lusynth.gan.step.train_step` on frames held in memory as uint8 (decoded
  once, at ingest), threads from the CPU quota (``configure_threads``), the networks, kernels and
  optimisers from :func:`lusynth.gan.step.build_networks` and the allocator setting of
  ``train_gan`` (``GanParams.fast_cpu``);
* ``lusynth_bf16``: the same in ``precision: bf16`` (``torch.autocast("cpu", torch.bfloat16)``,
  float32 weights and Adam state, losses on float32 logits), the path ``precision: auto`` takes on
  CPUs with native bf16 (AVX512-BF16/AMX); ``lusynth`` itself is ``precision: fp32``;
* ``lusynth_stock``: the same with ``fast_cpu=False`` (stock PyTorch layers, unfused Adam, default
  malloc), which separates what the CPU fast paths bring from the rest (and what they cost:
  each lusynth worker reports its peak RSS);
* ``reference``: ``reference_dcgan_loop.py``, a faithful rewrite of the reference loop: every
  image decoded from a PNG file and resized on every access, torch's default threads.

The reference reads the phantom frames as PNG files at the phantom's native export size
(320x288, like scanner exports), resized on the fly to the network size, as its data loader does.
FLOPs per step come from ``flops_per_image`` (FlopCounterMode; convs only) x batch; the FLOP rate
is compared with measured float32 and bfloat16 matmul peaks (best of 10 ``torch.mm`` 2048^3 each,
interleaved, on the same threads, measured before and after the training runs; the higher is used,
as a loaded moment only lowers it) to give MFU against both. Not a test; writes JSON to ``benchmarks/results/gan.json``.

    .venv/bin/python benchmarks/bench_gan.py --configs demo paper --steps 40 3 --repeats 3 1 --warmup 2

Two warm-up steps, not one: the first steps allocate the optimiser state and create oneDNN's
bf16 primitives, and with one warm-up step they still fell inside the timed window (paper size,
bf16: 3.6 img/s measured with ``--warmup 1`` against 8.3 with ``--warmup 2``, same code).

A control run pins the reference to lusynth's thread count, separating the data-path and
G-step savings from the threading difference (on a loaded 2-core machine torch's default two
threads can be several times slower than one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = {"demo": {"image_size": 64, "ngf": 16, "ndf": 16}, "paper": {"image_size": 256, "ngf": 64, "ndf": 64}}


def _worker_lusynth(cfg_name: str, steps: int, warmup: int, frames_path: str, fast_cpu: bool = True, precision: str = "fp32") -> dict:
    from contextlib import nullcontext

    import numpy as np
    import torch

    from lusynth.gan.params import GanParams
    from lusynth.gan.step import _to_unit, build_networks, train_step
    from lusynth.models.dcgan import DCGANConfig
    from lusynth.runtime import autocast_for, configure_threads, retain_freed_memory

    threads = configure_threads()
    c = CONFIGS[cfg_name]
    params = GanParams(ngf=c["ngf"], ndf=c["ndf"], lr_g=1e-4, lr_d=5e-5, fast_cpu=fast_cpu, precision=precision)
    autocast = autocast_for("cpu", precision)
    cfg = DCGANConfig(image_size=c["image_size"], ngf=c["ngf"], ndf=c["ndf"], fast_cpu=fast_cpu)
    raw = np.load(frames_path)  # (N, S, S) uint8 at the network size: what a lusynth frame store holds
    frames_t = torch.from_numpy(raw)
    torch.manual_seed(0)
    # the networks, layout, kernels and optimisers train_gan uses, and its allocator setting
    g, d, opt_g, opt_d, mf = build_networks(cfg, params, "cpu")
    n, bs, done, images, t0, epoch = len(frames_t), 16, 0, 0, 0.0, 0
    with retain_freed_memory() if fast_cpu else nullcontext():
        while done < warmup + steps:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
            epoch += 1
            for i in range(0, n - 1, bs):
                if done == warmup:
                    t0, images = time.perf_counter(), 0
                real = _to_unit(frames_t[perm[i : i + bs]]).contiguous(memory_format=mf)
                loss_d, loss_g, out_real, out_fake = train_step(g, d, opt_g, opt_d, real, nz=cfg.nz, autocast=autocast)
                _ = (loss_d.item(), loss_g.item(), out_real.mean().item(), out_fake.mean().item())  # what the loop logs
                images += real.shape[0]
                done += 1
                if done == warmup + steps:
                    break
    dt = time.perf_counter() - t0
    import resource

    return {"images_per_second": images / dt, "seconds": dt, "steps": steps, "images": images, "threads": threads,
            "fast_cpu": fast_cpu, "precision": precision, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _worker_peak() -> dict:
    """Best of 10 ``torch.mm`` 2048^3, in float32 and in bfloat16 (oneDNN's AVX512-BF16/AMX kernels), interleaved."""
    import torch

    from lusynth.runtime import configure_threads

    threads = configure_threads()
    n = 2048
    mats = {k: (torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)) for k, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    for a, b in mats.values():
        for _ in range(3):  # warm-up: thread pool, caches, clock ramp
            torch.mm(a, b)
    best = dict.fromkeys(mats, 0.0)
    for _ in range(10):
        for k, (a, b) in mats.items():
            t = time.perf_counter()
            torch.mm(a, b)
            best[k] = max(best[k], 2 * n**3 / (time.perf_counter() - t))
    return {"matmul_gflops": best["fp32"] / 1e9, "matmul_gflops_bf16": best["bf16"] / 1e9, "threads": threads}


def _run(args: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _prepare(workdir: Path, n_frames: int) -> tuple[Path, dict[int, Path]]:
    """Phantom frames as PNG files at native size (for the reference) and as uint8 arrays per size (lusynth)."""
    import numpy as np
    from PIL import Image

    from lusynth.data.phantom import PhantomParams, render_frames

    per_clip = 8
    raw, rows = render_frames(PhantomParams(patients=max(2, n_frames // (2 * per_clip)), clips_per_patient=2, frames_per_clip=per_clip))
    png_root = workdir / "png"
    for i, (f, r) in enumerate(zip(raw, rows, strict=True)):
        d = png_root / r["label"]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(f).save(d / f"{i:05d}.png")
    arrays = {}
    for size in {c["image_size"] for c in CONFIGS.values()}:
        arr = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in raw])
        arrays[size] = workdir / f"frames_{size}.npy"
        np.save(arrays[size], arr)
    return png_root, arrays


def main() -> None:
    ap = argparse.ArgumentParser(description="DCGAN training throughput, lusynth vs the reference loop")
    ap.add_argument("--configs", nargs="+", default=["demo", "paper"], choices=list(CONFIGS))
    ap.add_argument("--steps", nargs="+", type=int, default=[30, 3], help="timed steps per config (same order)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 2: see the module docstring)")
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--repeats", nargs="+", type=int, default=[3, 1], help="interleaved repeats per config (median reported)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "gan.json")
    ap.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker is not None:
        kind = a.worker[0]
        res = _worker_peak() if kind == "peak" else _worker_lusynth(a.worker[1], int(a.worker[2]), int(a.worker[3]), a.worker[4],
                                                                    fast_cpu=kind != "lusynth_stock",
                                                                    precision="bf16" if kind == "lusynth_bf16" else "fp32")
        print(json.dumps(res))
        return

    from lusynth.models.dcgan import DCGANConfig, flops_per_image

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["PYTHONPATH"] = str(HERE.parent / "src") + os.pathsep + env.get("PYTHONPATH", "")
    results = {"machine": {"cpus_visible": os.cpu_count(), "lusynth_threads_env": os.environ.get("LUSYNTH_THREADS")}, "configs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-gan-") as tmp:
        png_root, arrays = _prepare(Path(tmp), a.frames)
        peak = _run([__file__, "--worker", "peak"], env)
        results["matmul_peak"] = peak
        print(f"matmul peak: {peak['matmul_gflops']:.1f} GFLOP/s fp32, {peak['matmul_gflops_bf16']:.1f} bf16 on {peak['threads']} threads",
              flush=True)
        for name, steps in zip(a.configs, a.steps, strict=False):
            c = CONFIGS[name]
            cfg = DCGANConfig(image_size=c["image_size"], ngf=c["ngf"], ndf=c["ndf"])
            step_flops = flops_per_image(cfg)["train_step"] * 16
            # FLOPs of lusynth's step; the reference also computes D's weight gradients in the G step, so
            # its achieved rate below is a lower bound (same useful work, counted the same way)
            runs: dict[str, list[dict]] = {"lusynth": [], "lusynth_bf16": [], "lusynth_stock": [], "reference": [], "reference_same_threads": []}
            reps = a.repeats[min(a.configs.index(name), len(a.repeats) - 1)]
            ref_cmd = [str(HERE / "reference_dcgan_loop.py"), "--root", str(png_root), "--image-size", str(c["image_size"]),
                       "--ngf", str(c["ngf"]), "--ndf", str(c["ndf"]), "--steps", str(steps), "--warmup", str(a.warmup)]
            for _ in range(reps):  # interleaved, so load from other processes hits all of them alike
                for kind in ("lusynth", "lusynth_bf16", "lusynth_stock"):
                    runs[kind].append(_run([__file__, "--worker", kind, name, str(steps), str(a.warmup), str(arrays[c["image_size"]])], env))
                runs["reference"].append(_run(ref_cmd, env))
                runs["reference_same_threads"].append(_run([*ref_cmd, "--threads", str(runs["lusynth"][-1]["threads"])], env))
            entry = {"config": c, "batch": 16, "gflop_per_step": step_flops / 1e9, "repeats": reps}
            for impl, rs in runs.items():
                r = sorted(rs, key=lambda x: x["images_per_second"])[len(rs) // 2]  # median run
                r = {**r, "all_images_per_second": [x["images_per_second"] for x in rs]}
                r["gflops_achieved"] = step_flops / 1e9 * r["images_per_second"] / 16
                entry[impl] = r
            ours, ref, ref_same = entry["lusynth"], entry["reference"], entry["reference_same_threads"]
            entry["speedup_same_threads"] = ours["images_per_second"] / ref_same["images_per_second"]
            entry["speedup_fast_cpu"] = ours["images_per_second"] / entry["lusynth_stock"]["images_per_second"]
            entry["speedup_stock"] = entry["lusynth_stock"]["images_per_second"] / ref["images_per_second"]
            entry["speedup"] = ours["images_per_second"] / ref["images_per_second"]
            entry["speedup_bf16"] = entry["lusynth_bf16"]["images_per_second"] / ref["images_per_second"]
            entry["speedup_bf16_over_fp32"] = entry["lusynth_bf16"]["images_per_second"] / ours["images_per_second"]
            results["configs"][name] = entry
            a.out.parent.mkdir(parents=True, exist_ok=True)  # after every config: a run stopped early keeps what it measured
            a.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
            print(
                f"{name}: {step_flops / 1e9:.1f} GFLOP/step (batch 16) | lusynth {ours['images_per_second']:.1f} img/s "
                f"{ours['gflops_achieved']:.1f} GFLOP/s | reference {ref['images_per_second']:.1f} img/s "
                f"{ref['gflops_achieved']:.1f} GFLOP/s | speed-up {entry['speedup']:.2f}x "
                f"(vs reference pinned to the same threads: {ref_same['images_per_second']:.1f} img/s, {entry['speedup_same_threads']:.2f}x) | "
                f"lusynth with fast_cpu=False {entry['lusynth_stock']['images_per_second']:.1f} img/s: fast paths {entry['speedup_fast_cpu']:.2f}x "
                f"(peak RSS {ours['peak_rss_mb']:.0f} MB vs {entry['lusynth_stock']['peak_rss_mb']:.0f} MB) | "
                f"lusynth bf16 {entry['lusynth_bf16']['images_per_second']:.1f} img/s: {entry['speedup_bf16']:.2f}x the reference, "
                f"{entry['speedup_bf16_over_fp32']:.2f}x fp32",
                flush=True,
            )
        after = _run([__file__, "--worker", "peak"], env)
        before = results["matmul_peak"]
        peak = {k: max(before[k], after[k]) for k in ("matmul_gflops", "matmul_gflops_bf16")}  # a loaded moment only lowers it
        results["matmul_peak"] = {**peak, "threads": after["threads"], "before": before, "after": after}
        print(f"matmul peak after the runs: {after['matmul_gflops']:.1f} fp32, {after['matmul_gflops_bf16']:.1f} bf16 GFLOP/s; "
              f"MFU against {peak['matmul_gflops']:.1f} (fp32) / {peak['matmul_gflops_bf16']:.1f} (bf16):", flush=True)
        for name, entry in results["configs"].items():
            for impl in ("lusynth", "lusynth_bf16", "lusynth_stock", "reference", "reference_same_threads"):
                entry[impl]["mfu_vs_matmul"] = entry[impl]["gflops_achieved"] / peak["matmul_gflops"]
                entry[impl]["mfu_vs_matmul_bf16"] = entry[impl]["gflops_achieved"] / peak["matmul_gflops_bf16"]
            print(f"  {name}: lusynth fp32 {entry['lusynth']['mfu_vs_matmul']:.0%}, lusynth bf16 {entry['lusynth_bf16']['mfu_vs_matmul']:.0%} "
                  f"of the fp32 peak / {entry['lusynth_bf16']['mfu_vs_matmul_bf16']:.0%} of the bf16 peak, "
                  f"stock {entry['lusynth_stock']['mfu_vs_matmul']:.0%}, reference {entry['reference']['mfu_vs_matmul']:.0%}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
