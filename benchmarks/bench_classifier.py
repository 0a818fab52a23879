"""Classifier training throughput (img/s, fwd + bwd + RMSprop step, augmentation included) and an
estimated FLOP rate. Not a test: prints one JSON line per configuration.

    LUSYNTH_THREADS=2 .venv/bin/python benchmarks/bench_classifier.py --sizes 64 128 --widths 3 5 --batch 16 --steps 20
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from lusynth.classifier.augment import augment_batch, standardize
from lusynth.models.classifier import ClassifierConfig, build_classifier
from lusynth.runtime import configure_threads, select_device


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


def bench(size: int, width: int, batch: int, steps: int, device: str, augment: bool) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_classifier(ClassifierConfig(image_size=size, width=width))
    flops = _forward_flops(model, size)
    fmt = torch.channels_last if device == "cpu" else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    x = torch.rand(batch, 1, size, size)
    y = torch.randint(0, 2, (batch,))
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        xb = augment_batch(x, generator=gen) if augment else x
        xb = standardize(xb).to(device).contiguous(memory_format=fmt)
        loss = F.cross_entropy(model(xb), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    img_s = steps * batch / dt
    return {"image_size": size, "width": width, "batch": batch, "device": device, "augment": augment,
            "img_per_s": round(img_s, 1), "fwd_gflop_per_img": round(flops / 1e9, 5),
            # training ~ 3x forward FLOPs (forward + input and weight gradients)
            "train_gflop_per_s": round(3 * flops * img_s / 1e9, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--widths", type=int, nargs="+", default=[3])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-augment", action="store_true")
    args = ap.parse_args()
    threads = configure_threads()
    device = select_device(args.device)
    for size in args.sizes:
        for width in args.widths:
            print(json.dumps({**bench(size, width, args.batch, args.steps, device, not args.no_augment), "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
