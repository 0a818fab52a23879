"""Decode + prepare throughput (frames/s) and peak RSS of the ingest readers, one process.

    LUSYNTH_THREADS=1 .venv/bin/python benchmarks/bench_decode.py           # 512 PNGs, 8 clips x 120 frames
    LUSYNTH_THREADS=1 .venv/bin/python benchmarks/bench_decode.py --quick   # 128 PNGs, 2 clips

Inputs are generated into a temporary folder: 256x256 PNGs (grey and RGB) with an
ultrasound-like pattern (smooth echo bands times Rayleigh speckle, which compresses about as badly
as real B-mode frames), and 256x256 H.264 mp4 clips. Every case runs in a fresh subprocess that
calls ``read_frames`` + ``prepare_frame`` on every file in turn, so its peak RSS (ru_maxrss)
belongs to that case alone; "base RSS" is the same process after imports, before the first file.
Throughput is frames prepared per wall-clock second. Writes benchmarks/results/decode.json.
The ingest target (issue): >= 300 frames/s for 256x256 PNG input, end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "decode.json"
SIDE = 256
TARGET_FPS = 300.0


def _ultrasound_like(rng: np.random.Generator, t: int = 0) -> np.ndarray:
    """A 256x256 uint8 frame: horizontal echo bands with Rayleigh speckle (incompressible-ish)."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    bands = 0.35 + 0.3 * np.sin(yy / 11.0 + t / 5.0) ** 2 + 0.2 * np.exp(-(((xx - 128) / 60.0) ** 2))
    speckle = rng.rayleigh(0.6, size=(SIDE, SIDE))
    return np.clip(255 * bands * speckle / 1.5, 0, 255).astype(np.uint8)


def make_inputs(root: Path, n_png: int, n_clips: int, clip_frames: int) -> dict[str, Path]:
    """Write the benchmark inputs; return {case: folder}."""
    import av
    from PIL import Image
    from rich.progress import track

    rng = np.random.default_rng(0)
    folders = {name: root / name for name in ("png_grey", "png_rgb", "mp4")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for i in track(range(n_png), description="writing PNGs"):
        grey = _ultrasound_like(rng, i)
        Image.fromarray(grey).save(folders["png_grey"] / f"{i:05d}.png")
        # Exported LUS frames are often RGB with grey content plus coloured overlays.
        rgb = np.dstack([grey, grey, np.minimum(grey.astype(np.int16) + 20, 255).astype(np.uint8)])
        Image.fromarray(rgb).save(folders["png_rgb"] / f"{i:05d}.png")
    for c in track(range(n_clips), description="writing mp4 clips"):
        with av.open(str(folders["mp4"] / f"clip{c:03d}.mp4"), mode="w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width = stream.height = SIDE
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "20"}
            for t in range(clip_frames):
                frame = av.VideoFrame.from_ndarray(_ultrasound_like(rng, t), format="gray")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return folders


def worker(folder: Path, size: int, sampling_spec: str) -> dict[str, float]:
    """Run in a fresh process: decode + prepare every file of ``folder``; return the numbers."""
    import psutil

    from lusynth.data.preprocess import prepare_frame
    from lusynth.data.readers import VideoSampling, read_frames
    from lusynth.runtime import configure_threads

    threads = configure_threads()
    mode, _, value = sampling_spec.partition(":")
    sampling = VideoSampling(mode="every", step=int(value), max_frames=100_000) if mode == "every" else VideoSampling(
        mode="even", frames=int(value)
    )
    files = sorted(p for p in folder.iterdir() if p.is_file())
    # Warm up imports and codec initialisation outside the timed loop.
    for _, arr in read_frames(files[0], sampling=sampling):
        prepare_frame(arr, size=size)
    base_rss = psutil.Process().memory_info().rss
    frames = 0
    start = time.perf_counter()
    for path in files:
        for _, arr in read_frames(path, sampling=sampling):
            prepare_frame(arr, size=size)
            frames += 1
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "files": len(files),
        "frames": frames,
        "seconds": round(seconds, 3),
        "frames_per_s": round(frames / seconds, 1),
        "base_rss_mb": round(base_rss / 2**20, 1),
        "peak_rss_mb": round(peak_kb / 2**10, 1),
        "threads": threads,
    }


def _run_case(folder: Path, size: int, sampling: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", str(folder), "--size", str(size), "--sampling", sampling]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128 PNGs and 2 clips")
    parser.add_argument("--pngs", type=int, default=512)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--clip-frames", type=int, default=120)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="prepare_frame output sizes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--sampling", default="every:1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.size, args.sampling)))
        return

    from rich.console import Console
    from rich.table import Table

    from lusynth.atomic import atomic_write_json

    if args.quick:
        args.pngs, args.clips = 128, 2
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lusynth-bench-decode-") as tmp:
        folders = make_inputs(Path(tmp), args.pngs, args.clips, args.clip_frames)
        # (case, folder, sampling): every PNG is one frame; clips once with every frame decoded and
        # kept, once with ingest's default "even, 8 frames" sampling.
        cases = [
            ("png grey 256x256", folders["png_grey"], "every:1"),
            ("png rgb 256x256", folders["png_rgb"], "every:1"),
            ("mp4 256x256, every frame", folders["mp4"], "every:1"),
            ("mp4 256x256, even 8/clip", folders["mp4"], "even:8"),
        ]
        for size in args.sizes:
            for name, folder, sampling in cases:
                result = _run_case(folder, size, sampling)
                row = {"case": name, "size": size, "sampling": sampling, **result}
                rows.append(row)
                console.print(f"{name:>28}  -> {size:>3}: {result['frames_per_s']:8.1f} frames/s  peak {result['peak_rss_mb']:.0f} MB")
    table = Table(title=f"read_frames + prepare_frame, {rows[0]['threads']} thread(s); ingest target {TARGET_FPS:.0f} frames/s")
    for col in ("input", "out size", "files", "frames", "time (s)", "frames/s", "base RSS (MB)", "peak RSS (MB)"):
        table.add_column(col, justify="left" if col == "input" else "right")
    for r in rows:
        table.add_row(
            r["case"], str(r["size"]), str(r["files"]), str(r["frames"]), f"{r['seconds']:.2f}",
            f"{r['frames_per_s']:.0f}", f"{r['base_rss_mb']:.0f}", f"{r['peak_rss_mb']:.0f}",
        )
    console.print(table)
    atomic_write_json(
        args.out,
        {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "target_frames_per_s": TARGET_FPS,
            "rows": rows,
        },
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
