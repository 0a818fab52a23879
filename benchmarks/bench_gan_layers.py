"""Where the GEMM route of ``lusynth.models.fastcpu`` pays: the DCGAN's 4x4-side layers, oneDNN vs GEMM.

For each (transposed) convolution whose low-resolution side is 4x4, at the widths the DCGAN family
uses (paper 256: 2048x1024; paper 128: 1024x512; 512x256; demo: 128x64), times forward + backward
(input and weight gradients) at batch 16 in channels_last, median of 7, on the CPU quota's threads,
in float32 and under ``torch.autocast("cpu", torch.bfloat16)`` (the ``precision: bf16`` training
path; the GEMM route's matmul is then a bf16 matmul too). ``LOW_RES_MIN_WEIGHT`` in ``fastcpu`` is set
from this table. Writes ``results/gan_layers.json``.

    .venv/bin/python benchmarks/bench_gan_layers.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lusynth.models.fastcpu import LOW_RES_MIN_WEIGHT, conv2d_gemm, conv_transpose2d_gemm
from lusynth.runtime import configure_threads

HERE = Path(__file__).resolve().parent
LAYERS = [("conv_transpose", 2048, 1024), ("conv", 1024, 2048), ("conv_transpose", 1024, 512), ("conv", 512, 1024),
          ("conv_transpose", 512, 256), ("conv", 256, 512), ("conv_transpose", 128, 64), ("conv", 64, 128)]


def _median_ms(f, repeats: int = 7) -> float:  # type: ignore[no-untyped-def]
    f()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[repeats // 2] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "gan_layers.json")
    a = ap.parse_args()
    threads = configure_threads()
    cl = torch.channels_last
    rows = []
    for kind, c_in, c_out in LAYERS:
        torch.manual_seed(0)
        hw = 4 if kind == "conv_transpose" else 8  # the 4x4 side is the input of G's layer, the output of D's
        x = torch.randn(16, c_in, hw, hw).contiguous(memory_format=cl).requires_grad_(True)
        shape = (c_in, c_out, 4, 4) if kind == "conv_transpose" else (c_out, c_in, 4, 4)
        w = (0.02 * torch.randn(shape)).contiguous(memory_format=cl).requires_grad_(True)
        if kind == "conv_transpose":
            stock, gemm = (lambda: F.conv_transpose2d(x, w, stride=2, padding=1)), (lambda: conv_transpose2d_gemm(x, w, 2, 1))
        else:
            stock, gemm = (lambda: F.conv2d(x, w, stride=2, padding=1)), (lambda: conv2d_gemm(x, w, 2, 1))
        go = torch.randn_like(stock())

        def bf16(f):  # type: ignore[no-untyped-def]
            def run():  # type: ignore[no-untyped-def]
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = f()
                return torch.autograd.grad(y, [x, w], go.to(y.dtype))
            return run

        t_stock = _median_ms(lambda: torch.autograd.grad(stock(), [x, w], go))
        t_gemm = _median_ms(lambda: torch.autograd.grad(gemm(), [x, w], go))
        t_stock16 = _median_ms(bf16(stock))
        t_gemm16 = _median_ms(bf16(gemm))
        row = {"kind": kind, "c_in": c_in, "c_out": c_out, "weights": w.numel(), "stock_ms": t_stock, "gemm_ms": t_gemm,
               "gemm_speedup": t_stock / t_gemm, "bf16_stock_ms": t_stock16, "bf16_gemm_ms": t_gemm16,
               "bf16_gemm_speedup": t_stock16 / t_gemm16, "routed": w.numel() >= LOW_RES_MIN_WEIGHT}
        rows.append(row)
        print(f"{kind:15s} {c_in:5d}->{c_out:5d} ({w.numel() / 1e6:5.1f}M weights): fp32 oneDNN {t_stock:7.1f} ms, GEMM {t_gemm:7.1f} ms "
              f"({row['gemm_speedup']:.2f}x) | bf16 oneDNN {t_stock16:7.1f} ms, GEMM {t_gemm16:7.1f} ms ({row['bf16_gemm_speedup']:.2f}x)"
              f"{'  <- GEMM route' if row['routed'] else ''}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"threads": threads, "batch": 16, "min_weight": LOW_RES_MIN_WEIGHT, "layers": rows}, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
