"""Does bf16 training cost quality? fp32 vs bf16 GANs and classifiers at the demo settings, several seeds.

For each frame store given (e.g. the demo phantom and the ingested POCUS clips), each seed and each
precision, it trains

* one GAN (``train_gan``, the demo ``GanParams`` with only ``seed`` and ``precision`` changed) on the
  store's positive class at fraction 1.0, and reads the fidelity of its *chosen* checkpoint against
  the validation patients (1-NN accuracy and MMD^2, in pixel and embedding space) and of its last
  evaluation;
* one classifier (``train_classifier``, arm ``real``, fraction 1.0) and reads its validation ROC AUC.

Per metric it reports mean and standard deviation over seeds per precision, the paired
difference bf16 - fp32 (same seed = same data order, same fidelity embedding) and a paired t-test
(``scipy.stats.ttest_rel``). "Equal within seed noise" = the mean paired difference is within two
standard errors of zero. Writes ``benchmarks/results/precision_quality.json``. Not a test.

    lusynth ingest --out /tmp/phantom                                    # the demo phantom store
    lusynth ingest ../shared/data/pocus/clips.csv --path-column file --positive-class abnormal --out /tmp/pocus
    .venv/bin/python benchmarks/bench_precision_quality.py --store phantom=/tmp/phantom --store pocus=/tmp/pocus --seeds 0 1 2

Without ``--store`` it ingests both itself (POCUS only where ``../shared/data/pocus`` exists).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from lusynth.classifier.params import ClassifierParams
from lusynth.classifier.train import train_classifier
from lusynth.data.framestore import open_store
from lusynth.gan.params import GanParams
from lusynth.gan.train import train_gan
from lusynth.runtime import RunContext

HERE = Path(__file__).resolve().parent
GAN_METRICS = ("nn1_embed", "mmd_embed", "nn1_pixels", "mmd_pixels")
PRECISIONS = ("fp32", "bf16")


def _compare(values: dict[str, list[float]]) -> dict[str, Any]:
    """Per-precision mean/sd over seeds, the paired difference bf16 - fp32 and its t-test."""
    a, b = np.asarray(values["fp32"], float), np.asarray(values["bf16"], float)
    diff = b - a
    n = len(diff)
    se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    p = float(stats.ttest_rel(b, a).pvalue) if n > 1 and diff.std() > 0 else float("nan")
    return {"fp32": values["fp32"], "bf16": values["bf16"],
            "fp32_mean": float(a.mean()), "fp32_sd": float(a.std(ddof=1)) if n > 1 else float("nan"),
            "bf16_mean": float(b.mean()), "bf16_sd": float(b.std(ddof=1)) if n > 1 else float("nan"),
            "diff_mean": float(diff.mean()), "diff_se": se, "paired_t_p": p,
            "within_seed_noise": bool(n > 1 and abs(diff.mean()) <= 2 * se + 1e-12)}


def _default_stores(tmp: Path) -> list[str]:
    """The demo phantom store and, where the shared clips are present, the POCUS store, ingested into ``tmp``."""
    from lusynth.data.ingest import IngestParams, ingest

    ingest(None, tmp / "phantom")
    stores = [f"phantom={tmp / 'phantom'}"]
    pocus = HERE.parent.parent / "shared" / "data" / "pocus" / "clips.csv"
    if pocus.is_file():
        ingest(str(pocus), tmp / "pocus", params=IngestParams(path_column="file", positive_class="abnormal"))
        stores.append(f"pocus={tmp / 'pocus'}")
    return stores


def _write(path: Path, results: dict[str, Any]) -> None:
    """The results so far (after every run: a long run stopped early still leaves what it measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", action="append", default=[],
                    help="NAME=PATH of a real frame store (repeatable); default: the demo phantom and ../shared/data/pocus, ingested here")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None, help="GAN epochs (default: the demo profile's)")
    ap.add_argument("--skip-classifier", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "precision_quality.json")
    a = ap.parse_args()
    ctx = RunContext(track=False, progress=False, threads=a.threads, cache=False)
    gan_defaults = GanParams()
    results: dict[str, Any] = {"seeds": a.seeds, "threads": a.threads, "gan_params": "demo GanParams, seed and precision varied",
                                  "epochs": a.epochs or gan_defaults.epochs, "stores": {}}
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        for spec in a.store or _default_stores(Path(tmp)):
            name, path = spec.split("=", 1)
            store = open_store(path)
            label = store.header.get("positive_class") or store.classes[-1]
            gan: dict[str, dict[str, list[float]]] = {m: {p: [] for p in PRECISIONS} for m in (*GAN_METRICS, *(f"last_{m}" for m in GAN_METRICS), "seconds", "train_seconds")}
            auc: dict[str, list[float]] = {p: [] for p in PRECISIONS}
            for seed in a.seeds:
                for prec in PRECISIONS:  # interleaved: machine load hits both alike
                    params = GanParams(seed=seed, precision=prec, **({"epochs": a.epochs} if a.epochs else {}))
                    t0 = time.perf_counter()
                    run = train_gan(path, Path(tmp) / f"{name}-gan-{seed}-{prec}", label=label, fraction=1.0, params=params,
                                    progress=False, ctx=ctx)
                    gan["seconds"][prec].append(time.perf_counter() - t0)  # the whole stage: steps, evaluations, embedding, checkpoints
                    gan["train_seconds"][prec].append(float(run.train_seconds or 0.0))  # the training steps only
                    for m in GAN_METRICS:
                        gan[m][prec].append(float(run.chosen["metrics"][m]))
                        gan[f"last_{m}"][prec].append(float(run.history[-1][m]))
                    print(f"{name} seed {seed} {prec}: GAN chosen step {run.chosen['step']}, "
                          + ", ".join(f"{m} {run.chosen['metrics'][m]:.3f}" for m in GAN_METRICS)
                          + f" ({gan['seconds'][prec][-1]:.0f} s)", flush=True)
                    _write(a.out, {**results, "partial": {"store": name, "gan": gan, "classifier_val_auc": auc}})
                    if not a.skip_classifier:
                        c = train_classifier(path, Path(tmp) / f"{name}-clf-{seed}-{prec}", arm="real", fraction=1.0, seed=seed,
                                             params=ClassifierParams(precision=prec), progress=False, ctx=ctx)
                        auc[prec].append(c.val_auc)
                        print(f"{name} seed {seed} {prec}: classifier val AUC {c.val_auc:.3f}", flush=True)
            entry: dict[str, Any] = {"path": str(path), "label": label, "gan": {m: _compare(v) for m, v in gan.items()}}
            if not a.skip_classifier:
                entry["classifier_val_auc"] = _compare(auc)
            results["stores"][name] = entry
            _write(a.out, results)
            for m in (*GAN_METRICS, "seconds", "train_seconds"):
                r = entry["gan"][m]
                print(f"{name} {m}: fp32 {r['fp32_mean']:.3f}±{r['fp32_sd']:.3f}, bf16 {r['bf16_mean']:.3f}±{r['bf16_sd']:.3f}, "
                      f"paired diff {r['diff_mean']:+.3f}±{r['diff_se']:.3f} (p={r['paired_t_p']:.2f})", flush=True)
            if not a.skip_classifier:
                r = entry["classifier_val_auc"]
                print(f"{name} val AUC: fp32 {r['fp32_mean']:.3f}±{r['fp32_sd']:.3f}, bf16 {r['bf16_mean']:.3f}±{r['bf16_sd']:.3f}, "
                      f"paired diff {r['diff_mean']:+.3f}±{r['diff_se']:.3f}", flush=True)
    _write(a.out, results)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
