"""Classifier training throughput (img/s, fwd + bwd + RMSprop step, augmentation included) and an
estimated FLOP rate. Not a test: prints one JSON line per configuration.

    LUSYNTH_THREADS=2 .venv/bin/python benchmarks/bench_classifier.py --sizes 64 128 --widths 3 5 --batch 16 --steps 20

Each configuration runs every ``--precisions`` entry (default fp32 then bf16) side by side in this one
process, interleaved over ``--repeats`` rounds; the ratio to the first is ``speedup_vs_fp32``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lusynth.classifier.augment import augment_batch, standardize
from lusynth.models.classifier import ClassifierConfig, build_classifier
from lusynth.runtime import autocast_for, configure_threads, resolve_precision, select_device


def _forward_flops(model: torch.nn.Module, size: int) -> float:
    """Multiply-adds x 2 of one forward pass, counted from conv/linear output shapes."""
    total = 0.0

    def hook(mod: torch.nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += 2.0 * out.numel() * k
        elif isinstance(mod, torch.nn.Linear):
            total += 2.0 * mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, size, size))
    for h in hs:
        h.remove()
    return total


def bench(size: int, width: int, batch: int, steps: int, device: str, augment: bool, precisions: list[str],
          repeats: int) -> dict[str, object]:
    """img/s of one training step per precision, side by side: the same data and seed for every
    precision, timed in ``repeats`` interleaved rounds of ``steps`` steps (medians), so machine load
    hits them alike. ``fp32`` is the path without autocast (main's training step, unchanged)."""
    fmt = torch.channels_last if device == "cpu" else torch.contiguous_format
    x = torch.rand(batch, 1, size, size)
    y = torch.randint(0, 2, (batch,))
    runs = {}
    for prec in precisions:
        torch.manual_seed(0)
        model = build_classifier(ClassifierConfig(image_size=size, width=width))
        flops = _forward_flops(model, size)
        model = model.to(device, memory_format=fmt).train()
        opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        runs[prec] = (model, opt, autocast_for(device, resolve_precision(prec, device)), torch.Generator().manual_seed(0))

    def step(prec: str) -> None:
        model, opt, autocast, gen = runs[prec]
        xb = augment_batch(x, generator=gen) if augment else x
        xb = standardize(xb).to(device).contiguous(memory_format=fmt)
        with autocast():  # as classifier.train._train_trial: the network under autocast, the loss on float32 logits
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(prec: str) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step(prec)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return steps * batch / (time.perf_counter() - t0)

    for prec in precisions:  # warm-up
        for _ in range(3):
            step(prec)
    img_s: dict[str, list[float]] = {p: [] for p in precisions}
    for _ in range(repeats):
        for prec in precisions:
            img_s[prec].append(timed(prec))
    med = {p: float(np.median(v)) for p, v in img_s.items()}
    base = med[precisions[0]]
    return {"image_size": size, "width": width, "batch": batch, "device": device, "augment": augment,
            "fwd_gflop_per_img": round(flops / 1e9, 5),
            "precisions": {p: {"img_per_s": round(med[p], 1), "all_img_per_s": [round(v, 1) for v in img_s[p]],
                               "speedup_vs_" + precisions[0]: round(med[p] / base, 3),
                               # training ~ 3x forward FLOPs (forward + input and weight gradients)
                               "train_gflop_per_s": round(3 * flops * med[p] / 1e9, 2)} for p in precisions}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--widths", type=int, nargs="+", default=[3])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds per precision (median reported)")
    ap.add_argument("--out", type=Path, default=None, help="also write the lines as a JSON list here")
    args = ap.parse_args()
    threads = configure_threads()
    device = select_device(args.device)
    rows = []
    for size in args.sizes:
        for width in args.widths:
            rows.append({**bench(size, width, args.batch, args.steps, device, not args.no_augment, args.precisions, args.repeats),
                         "threads": threads})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
