"""Requests/s of the served endpoint (``POST /predict``, one PNG per request) from a local load generator.

    LUSYNTH_THREADS=1 .venv/bin/python benchmarks/bench_serve.py [--onnx FILE] [--seconds 10] [--concurrency 4]

Starts uvicorn in this process (one worker) on 127.0.0.1, then drives it with ``concurrency``
httpx clients in threads for ``seconds``. Client and server share the CPUs, so this is a lower
bound of what the server does alone. Results go to benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", type=Path)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1, help="images per request")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve.json")
    a = ap.parse_args()
    import httpx
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.bench_inference import _random_classifier
    from tests.serve.conftest import running

    from lusynth.export.onnx_export import export_classifier
    from lusynth.runtime import configure_threads
    from lusynth.serve import create_app

    threads = configure_threads()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = a.onnx or export_classifier(_random_classifier(Path(tmp) / "clf", 64, 3), Path(tmp) / "c.onnx").path
        app = create_app(onnx_path, max_batch=max(64, a.batch))
        size = app.state.model.image_size
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)).save(buf, format="PNG")
        files = [("files", (f"{i}.png", buf.getvalue(), "image/png")) for i in range(a.batch)]
        with running(app) as url:
            lat: list[float] = []
            errors = [0]
            stop = time.monotonic() + a.seconds

            def worker() -> None:
                with httpx.Client(base_url=url, timeout=30) as c:
                    c.post("/predict", files=files)  # warm the connection
                    while time.monotonic() < stop:
                        t = time.perf_counter()
                        r = c.post("/predict", files=files)
                        lat.append(time.perf_counter() - t)
                        if r.status_code != 200:
                            errors[0] += 1

            t0 = time.monotonic()
            ws = [threading.Thread(target=worker) for _ in range(a.concurrency)]
            for w in ws:
                w.start()
            for w in ws:
                w.join()
            wall = time.monotonic() - t0
    res = {"threads": threads, "concurrency": a.concurrency, "batch": a.batch, "seconds": wall, "requests": len(lat),
           "errors": errors[0], "requests_per_s": len(lat) / wall, "images_per_s": len(lat) * a.batch / wall,
           "latency_median_ms": float(np.median(lat) * 1e3), "latency_p99_ms": float(np.percentile(lat, 99) * 1e3)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print(json.dumps(res, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
