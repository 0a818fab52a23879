"""Time and peak memory of the fidelity and privacy metrics at 2k / 10k / 20k frames per side.

    .venv/bin/python benchmarks/bench_metrics.py            # 2k, 10k, 20k x d = 64, 4096
    .venv/bin/python benchmarks/bench_metrics.py --quick    # 2k only

Features are random [0, 1] float32 (d = 4096 is a flattened 64x64 frame); the cost depends only
on the shapes. Peak memory is the tracemalloc peak of numpy allocations during the call (BLAS
scratch space is not counted); the dense float64 distance matrix it replaces is shown for
comparison. Writes benchmarks/results/metrics.json.
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from lusynth.atomic import atomic_write_json
from lusynth.metrics.distances import nearest_neighbor_distances
from lusynth.metrics.fidelity import frechet_distance, kernel_inception_distance, mmd2_rbf, one_nn_accuracy
from lusynth.runtime import configure_threads

RESULTS = Path(__file__).parent / "results" / "metrics.json"

# name -> the call measured on (real, fake)
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], object]] = {
    "nn_dcr": lambda a, b: nearest_neighbor_distances(a, b),
    "one_nn_accuracy": one_nn_accuracy,
    "mmd2_rbf": mmd2_rbf,
    "frechet_distance": frechet_distance,
    "kid": kernel_inception_distance,
}


def measure(fn: Callable[[], object]) -> tuple[float, float]:
    """(seconds, peak MB of traced allocations) for one call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2k samples per side only")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 10_000, 20_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 4096])
    parser.add_argument("--metrics", nargs="+", choices=sorted(METRICS), default=list(METRICS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [2_000] if args.quick else args.sizes
    threads = configure_threads()
    console = Console()
    rows = []
    for n in sizes:
        for d in args.dims:
            rng = np.random.default_rng(0)
            real = rng.random((n, d), dtype=np.float32)
            fake = rng.random((n, d), dtype=np.float32)
            for name in args.metrics:
                seconds, peak_mb = measure(lambda: METRICS[name](real, fake))
                row = {
                    "metric": name,
                    "n_per_side": n,
                    "dim": d,
                    "seconds": round(seconds, 3),
                    "peak_mb": round(peak_mb, 1),
                    "input_mb": round((real.nbytes + fake.nbytes) / 1e6, 1),
                    "dense_matrix_mb": round(n * n * 8 / 1e6, 1),
                }
                rows.append(row)
                console.print(f"{name:>18}  n={n:>6}  d={d:>5}  {seconds:8.2f} s  peak {peak_mb:8.1f} MB")
    table = Table(title=f"lusynth.metrics on {threads} thread(s), float32 inputs, float64 distances")
    for col in ("metric", "n/side", "d", "time (s)", "peak (MB)", "inputs (MB)", "dense n x n (MB)"):
        table.add_column(col, justify="left" if col == "metric" else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            r["metric"], f"{r['n_per_side']:,}", str(r["dim"]), f"{r['seconds']:.2f}",
            f"{r['peak_mb']:.0f}", f"{r['input_mb']:.0f}", f"{r['dense_matrix_mb']:.0f}",
        )
    console.print(table)
    atomic_write_json(
        args.out,
        {"threads": threads, "machine": platform.processor() or platform.machine(), "numpy": np.__version__, "rows": rows},
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
