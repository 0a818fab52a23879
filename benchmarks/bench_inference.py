"""Classifier inference: PyTorch eager vs onnxruntime, batch 1 latency (median/p99) and batch 64 throughput.

    LUSYNTH_THREADS=1 .venv/bin/python benchmarks/bench_inference.py [--classifier DIR] [--image-size 64] [--width 3]

Without --classifier, a randomly initialised classifier of the given shape is written to a temp
dir (speed does not depend on the weights). Both paths include the preprocessing: eager runs
to_float + standardize + model + softmax (what LoadedClassifier does), ORT runs the exported graph
on raw uint8 frames. Results go to benchmarks/results/inference.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _timeit(fn, n: int, warmup: int = 10) -> np.ndarray:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out


def _random_classifier(d: Path, image_size: int, width: int) -> Path:
    from lusynth.classifier.run import META_FILE
    from lusynth.classifier.train import FORMAT_VERSION, MODEL_FILE, PREPROCESSING
    from lusynth.models.classifier import ClassifierConfig, build_classifier

    cfg = ClassifierConfig(image_size=image_size, width=width)
    torch.manual_seed(0)
    m = build_classifier(cfg)
    d.mkdir(parents=True, exist_ok=True)
    torch.save({"format_version": FORMAT_VERSION, "state_dict": m.state_dict(), "config": cfg.__dict__, "classes": ["neg", "pos"],
                "positive_class": "pos", "threshold": 0.5, "preprocessing": PREPROCESSING}, d / MODEL_FILE)
    (d / META_FILE).write_text(json.dumps({"arm": "real", "fraction": 1.0, "seed": 0, "val_auc": 0.5, "classes": ["neg", "pos"]}))
    return d


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classifier", type=Path)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--width", type=int, default=3)
    ap.add_argument("--n1", type=int, default=300)
    ap.add_argument("--n64", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "inference.json")
    a = ap.parse_args()
    from lusynth.classifier.train import load_classifier
    from lusynth.export.onnx_export import export_classifier, ort_session
    from lusynth.runtime import configure_threads

    threads = configure_threads()
    with tempfile.TemporaryDirectory() as tmp:
        cdir = a.classifier or _random_classifier(Path(tmp) / "clf", a.image_size, a.width)
        clf = load_classifier(cdir)
        res = export_classifier(cdir, Path(tmp) / "clf.onnx")
        sess = ort_session(res.path)
        s = clf.config.image_size
        rng = np.random.default_rng(0)
        results = {"threads": threads, "image_size": s, "width": clf.config.width, "exporter": res.exporter,
                   "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
        for b, n in ((1, a.n1), (64, a.n64)):
            x = rng.integers(0, 256, (b, s, s), dtype=np.uint8)
            with torch.inference_mode():
                eager = _timeit(lambda: clf.predict_proba(x), n)
            ort = _timeit(lambda: sess.run(None, {"frames": x}), n)
            for name, t in (("eager", eager), ("ort", ort)):
                results[f"{name}_b{b}_median_ms"] = float(np.median(t) * 1e3)
                results[f"{name}_b{b}_p99_ms"] = float(np.percentile(t, 99) * 1e3)
                results[f"{name}_b{b}_img_per_s"] = float(b / np.median(t))
        results["ort_speedup_b1_median"] = results["eager_b1_median_ms"] / results["ort_b1_median_ms"]
        results["ort_speedup_b64_throughput"] = results["ort_b64_img_per_s"] / results["eager_b64_img_per_s"]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
