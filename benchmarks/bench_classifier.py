"""Classifier training throughput: today's step (``legacy``) against the current one (``new``), side by side.

Each (size, width) configuration runs four variants, each in its own worker process (its own torch
threads and its own malloc state), timed in interleaved rounds (``--repeats`` rounds of ``--steps``
steps; medians), so machine load hits them alike:

* ``legacy``: the training step of main before issue 16's classifier work, kept here as the baseline:
  stock layers (``ClassifierConfig(fast_cpu=False)``: ``nn.BatchNorm2d``, ``nn.Dropout``), RMSprop
  with torch's CPU default (a Python loop over the parameters), glibc's default malloc;
* ``new``: the step ``train_classifier`` runs: :class:`~lusynth.models.fastcpu.FastBatchNorm2d` and
  :class:`~lusynth.models.fastcpu.FastDropout` (``fast_cpu=True``), ``make_optimizer`` (foreach
  RMSprop, bit-identical updates) and ``retain_freed_memory`` around the training;

each in ``fp32`` (no autocast) and ``bf16`` (``torch.autocast("cpu", torch.bfloat16)``: what
``precision: auto`` resolves to on CPUs with native bf16). One step = augmentation (on by
default) + per-image standardisation + forward + loss + backward + RMSprop step, channels_last on
the CPU as in training. Prints one JSON line per configuration and writes them all to ``--out``.

    LUSYNTH_THREADS=2 .venv/bin/python benchmarks/bench_classifier.py --sizes 64 --threads 1 2 --steps 20 --repeats 7

``ratios`` gives new/legacy per precision and every variant against legacy fp32 (today's default).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VARIANTS = ("legacy", "new")


def _forward_flops(size: int, width: int) -> float:
    """Multiply-adds x 2 of one forward pass, counted from conv/linear output shapes."""
    import torch

    from lusynth.models.classifier import ClassifierConfig, build_classifier

    model = build_classifier(ClassifierConfig(image_size=size, width=width))
    total = 0.0

    def hook(mod: torch.nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += 2.0 * out.numel() * k
        elif isinstance(mod, torch.nn.Linear):
            total += 2.0 * mod.in_features * mod.out_features

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, size, size))
    return total


def _worker(variant: str, precision: str, size: int, width: int, batch: int, steps: int, threads: int, device: str,
            augment: bool, warmup: int) -> None:
    """Build one variant's step, warm it up, then time ``steps`` steps per ``run`` line on stdin."""
    import contextlib
    import resource

    import torch
    import torch.nn.functional as F

    from lusynth.classifier.augment import augment_batch, standardize
    from lusynth.classifier.params import ClassifierParams
    from lusynth.classifier.train import make_optimizer
    from lusynth.models.classifier import ClassifierConfig, build_classifier
    from lusynth.runtime import autocast_for, configure_threads, retain_freed_memory, select_device

    configure_threads(threads)
    device = select_device(device)
    new = variant == "new"
    fmt = torch.channels_last if device == "cpu" else torch.contiguous_format  # as classifier.train._memory_format
    x = torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 2, (batch,), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = build_classifier(ClassifierConfig(image_size=size, width=width, fast_cpu=new))
    model = model.to(device, memory_format=fmt)  # type: ignore[call-overload]  # torch stubs lack memory_format
    model.train()
    p = ClassifierParams()
    if new:
        opt = make_optimizer(model, lr=1e-3, params=p)
    else:  # main's optimiser: torch's CPU default (no foreach)
        opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=p.rmsprop_alpha, eps=p.rmsprop_eps)
    autocast = autocast_for(device, precision)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        xb = augment_batch(x, generator=gen) if augment else x
        xb = standardize(xb).to(device).contiguous(memory_format=fmt)
        with autocast():  # as classifier.train: the network under autocast, the loss on float32 logits
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # what the training loop logs (and a sync point on CUDA)

    with retain_freed_memory() if (new and device == "cpu") else contextlib.nullcontext():
        for _ in range(warmup):
            step()
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            dt = time.perf_counter() - t0
            print(json.dumps({"img_per_s": steps * batch / dt,
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def bench(size: int, width: int, batch: int, steps: int, threads: int, device: str, augment: bool, precisions: list[str],
          repeats: int, warmup: int) -> dict[str, object]:
    """img/s of every (variant, precision), each in its own worker, interleaved over ``repeats`` rounds."""
    names = [f"{v}_{p}" for p in precisions for v in VARIANTS]
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name in names:
            variant, prec = name.split("_")
            procs[name] = subprocess.Popen(
                [sys.executable, __file__, "--worker", variant, prec, str(size), str(width), str(batch), str(steps), str(threads),
                 device, str(int(augment)), str(warmup)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            out = procs[name].stdout
            assert out is not None
            if out.readline().strip() != "ready":  # one at a time: warm-ups do not overlap
                raise RuntimeError(f"worker {name} failed to start")
        runs: dict[str, list[float]] = {n: [] for n in names}
        rss: dict[str, float] = {}
        for _ in range(repeats):
            for name in names:
                proc = procs[name]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write("run\n")
                proc.stdin.flush()
                rec = json.loads(proc.stdout.readline())
                runs[name].append(rec["img_per_s"])
                rss[name] = rec["peak_rss_mb"]
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=60)
    med = {n: float(np.median(v)) for n, v in runs.items()}
    flops = _forward_flops(size, width)
    base = f"legacy_{precisions[0]}"
    ratios: dict[str, float] = {}
    for prec in precisions:
        # per round too: the two variants of a round ran back to back, so their ratio sees the same load
        per_round = [a / b for a, b in zip(runs[f"new_{prec}"], runs[f"legacy_{prec}"], strict=True)]
        ratios[f"new/legacy {prec}"] = round(med[f"new_{prec}"] / med[f"legacy_{prec}"], 3)
        ratios[f"new/legacy {prec} (median of per-round ratios)"] = round(float(np.median(per_round)), 3)
    for n in names:
        if n != base:
            ratios[f"{n}/{base}"] = round(med[n] / med[base], 3)
    return {"image_size": size, "width": width, "batch": batch, "threads": threads, "device": device, "augment": augment,
            "steps_per_round": steps, "rounds": repeats, "fwd_gflop_per_img": round(flops / 1e9, 5),
            "variants": {n: {"img_per_s": round(med[n], 1), "all_img_per_s": [round(v, 1) for v in runs[n]],
                             # training ~ 3x forward FLOPs (forward + input and weight gradients)
                             "train_gflop_per_s": round(3 * flops * med[n] / 1e9, 2), "peak_rss_mb": round(rss[n], 1)}
                         for n in names},
            "ratios": ratios}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        v, prec, size, width, batch, steps, threads, device, augment, warmup = sys.argv[2:12]
        _worker(v, prec, int(size), int(width), int(batch), int(steps), int(threads), device, bool(int(augment)), int(warmup))
        return
    from lusynth.runtime import cpu_quota

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--widths", type=int, nargs="+", default=[3])
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="torch threads per worker, one configuration each (default: the CPU quota; train_classifier uses 1)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20, help="steps per round")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per worker before the rounds")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "classifier.json", help="write the lines as a JSON list here")
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        for width in args.widths:
            for threads in args.threads or [cpu_quota()]:
                rows.append(bench(size, width, args.batch, args.steps, threads, args.device, not args.no_augment, args.precisions,
                                  args.repeats, args.warmup))
                print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
