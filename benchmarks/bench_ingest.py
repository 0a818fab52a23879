"""Ingest throughput (frames/s) and peak memory, for PNG folders and for video clips.

Each measurement runs ``lusynth.data.ingest.ingest`` in a fresh subprocess so its peak RSS
(``ru_maxrss``) is its own. Memory should not grow with the number of frames beyond the output
array: the script prints peak RSS next to the size of the frames array for several N.

    .venv/bin/python benchmarks/bench_ingest.py            # PNG 256x256 at N=500/2000/4000, clips
    .venv/bin/python benchmarks/bench_ingest.py --quick    # N=300 only

Results are written to benchmarks/results/ingest.json. Target (issue 2): >= 300 frames/s for
256x256 PNG input on the 2-core CI machine.
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

import numpy as np
from PIL import Image

RESULTS = Path(__file__).resolve().parent / "results"

_CHILD = r"""
import json, resource, sys, time
from lusynth.data.ingest import IngestParams, ingest
src, out, size, positive, frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
t = time.perf_counter()
r = ingest(src, out, params=IngestParams(image_size=size, positive_class=positive, video_frames=frames, max_frames_per_clip=frames))
dt = time.perf_counter() - t
print(json.dumps({"frames": r.report["frames"], "seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_png_folder(root: Path, n: int, size: int = 256) -> None:
    """n distinct grey PNGs (speckle-like texture) in two classes, 4 frames per patient."""
    rng = np.random.default_rng(0)
    base = rng.gamma(2.0, 40.0, (size, size))
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        d = root / label / f"pt{i // 8:04d}"
        d.mkdir(parents=True, exist_ok=True)
        img = np.clip(np.roll(base, i, axis=1) + rng.normal(0, 8, (size, size)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"{i:05d}.png", compress_level=6)


def make_clip_folder(root: Path, n_clips: int, frames: int = 32, size: int = 256) -> None:
    import av

    rng = np.random.default_rng(1)
    for i in range(n_clips):
        label = "pos" if i % 2 else "neg"
        d = root / label / f"pt{i:04d}"
        d.mkdir(parents=True, exist_ok=True)
        with av.open(str(d / "clip.mp4"), "w") as c:
            s = c.add_stream("h264", rate=20)
            s.width = s.height = size
            s.pix_fmt = "yuv420p"
            for _ in range(frames):
                f = rng.integers(0, 255, (size, size), dtype=np.uint8)
                c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="gray").reformat(format="yuv420p")))
            c.mux(s.encode(None))


def run_child(src: Path, out: Path, size: int, frames: int) -> dict:
    env = dict(os.environ, LUSYNTH_PSEUDONYM_KEY=os.environ.get("LUSYNTH_PSEUDONYM_KEY", "bench-key-0123456789abcdef"))
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, str(src), str(out), str(size), "pos", str(frames)],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sizes = [300] if args.quick else [500, 2000, 4000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for n in sizes:
            src = tmp / f"png{n}"
            make_png_folder(src, n)
            runs = [run_child(src, tmp / f"out{n}-{r}", 256, 8) for r in range(args.repeats)]
            fps = sorted(r["frames"] / r["seconds"] for r in runs)
            rss = max(r["peak_rss_mb"] for r in runs)
            rows.append({"input": "png 256x256", "n_frames": n, "frames_per_s_median": round(fps[len(fps) // 2], 1),
                         "frames_per_s_all": [round(f, 1) for f in fps], "peak_rss_mb": round(rss, 1),
                         "output_array_mb": round(n * 256 * 256 / 2**20, 1)})
            print(rows[-1], flush=True)
        n_clips = 10 if args.quick else 40
        src = tmp / "clips"
        make_clip_folder(src, n_clips)
        runs = [run_child(src, tmp / f"outc-{r}", 256, 32) for r in range(args.repeats)]
        fps = sorted(r["frames"] / r["seconds"] for r in runs)
        rows.append({"input": "mp4 256x256 (32 frames/clip)", "n_frames": runs[0]["frames"], "frames_per_s_median": round(fps[len(fps) // 2], 1),
                     "frames_per_s_all": [round(f, 1) for f in fps], "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
                     "output_array_mb": round(runs[0]["frames"] * 256 * 256 / 2**20, 1)})
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    print(f"{'input':<32}{'frames':>8}{'frames/s':>10}{'peak RSS MB':>13}{'array MB':>10}")
    for r in rows:
        print(f"{r['input']:<32}{r['n_frames']:>8}{r['frames_per_s_median']:>10}{r['peak_rss_mb']:>13}{r['output_array_mb']:>10}")


if __name__ == "__main__":
    main()
