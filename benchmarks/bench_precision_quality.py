"""Does bf16 training (or a step cap) cost quality? Two values of one GAN/classifier parameter at the demo settings, several seeds.

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

``--vary FIELD=A,B`` compares another :class:`~lusynth.gan.params.GanParams` field instead of
``precision=fp32,bf16`` (the default), GAN only, e.g. the step cap on a 60-patient phantom
(where the demo's 100 epochs are 6000 steps and the cap stops at ~1500)::

    lusynth ingest --out /tmp/large --set phantom.patients=60 --set phantom.clips_per_patient=2 \
        --set phantom.frames_per_clip=25 --set ingest.video_frames=25 --set experiment.folds=5
    .venv/bin/python benchmarks/bench_precision_quality.py --store large=/tmp/large --vary max_steps=0,1500 \
        --skip-classifier --seeds 0 1 --out benchmarks/results/step_cap_quality.json
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


def _compare(values: dict[str, list[float]], first: str, second: str) -> dict[str, Any]:
    """Per-variant mean/sd over seeds, the paired difference ``second - first`` and its t-test."""
    a, b = np.asarray(values[first], float), np.asarray(values[second], float)
    diff = b - a
    n = len(diff)
    se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    p = float(stats.ttest_rel(b, a).pvalue) if n > 1 and diff.std() > 0 else float("nan")
    return {first: values[first], second: values[second],
            f"{first}_mean": float(a.mean()), f"{first}_sd": float(a.std(ddof=1)) if n > 1 else float("nan"),
            f"{second}_mean": float(b.mean()), f"{second}_sd": float(b.std(ddof=1)) if n > 1 else float("nan"),
            "diff_mean": float(diff.mean()), "diff_se": se, "paired_t_p": p,
            "within_seed_noise": bool(n > 1 and abs(diff.mean()) <= 2 * se + 1e-12)}


def _variants(spec: str) -> tuple[str, list[tuple[str, Any]]]:
    """``"max_steps=0,1500"`` -> ("max_steps", [("0", 0), ("1500", 1500)]): each value parsed and
    checked as ``--set gan.FIELD=VALUE`` would be (:func:`lusynth.params.from_dict`)."""
    from lusynth.errors import InputError
    from lusynth.params import from_dict

    field, _, values = spec.partition("=")
    names = [v.strip() for v in values.split(",") if v.strip()]
    if len(names) != 2:
        raise SystemExit(f"--vary {spec!r}: write FIELD=A,B with a GanParams field and two values, e.g. precision=fp32,bf16")
    try:
        return field, [(v, getattr(from_dict(GanParams, {field: v}, where="gan"), field)) for v in names]
    except InputError as exc:
        raise SystemExit(f"--vary {spec!r}: {exc}") from None


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
    ap.add_argument("--vary", default="precision=fp32,bf16", help="FIELD=A,B: the GanParams field compared (default precision=fp32,bf16)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "precision_quality.json")
    a = ap.parse_args()
    field, variants = _variants(a.vary)
    names = [n for n, _ in variants]
    if field != "precision" and not a.skip_classifier:
        raise SystemExit(f"--vary {a.vary}: only precision applies to the classifier too; add --skip-classifier")
    ctx = RunContext(track=False, progress=False, threads=a.threads, cache=False)
    gan_defaults = GanParams()
    results: dict[str, Any] = {"seeds": a.seeds, "threads": a.threads, "gan_params": f"demo GanParams, seed and {field} varied", "vary": {field: names},
                                  "epochs": a.epochs or gan_defaults.epochs, "stores": {}}
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        for spec in a.store or _default_stores(Path(tmp)):
            name, path = spec.split("=", 1)
            store = open_store(path)
            label = store.header.get("positive_class") or store.classes[-1]
            gan: dict[str, dict[str, list[float]]] = {m: {p: [] for p in names} for m in (*GAN_METRICS, *(f"last_{m}" for m in GAN_METRICS), "seconds", "train_seconds", "steps")}
            auc: dict[str, list[float]] = {p: [] for p in names}
            for seed in a.seeds:
                for variant, value in variants:  # interleaved: machine load hits both alike
                    params = GanParams(seed=seed, **{field: value}, **({"epochs": a.epochs} if a.epochs else {}))
                    t0 = time.perf_counter()
                    run = train_gan(path, Path(tmp) / f"{name}-gan-{seed}-{variant}", label=label, fraction=1.0, params=params,
                                    progress=False, ctx=ctx)
                    gan["seconds"][variant].append(time.perf_counter() - t0)  # the whole stage: steps, evaluations, embedding, checkpoints
                    gan["train_seconds"][variant].append(float(run.train_seconds or 0.0))  # the training steps only
                    gan["steps"][variant].append(float(run.steps))
                    for m in GAN_METRICS:
                        gan[m][variant].append(float(run.chosen["metrics"][m]))
                        gan[f"last_{m}"][variant].append(float(run.history[-1][m]))
                    print(f"{name} seed {seed} {variant}: GAN chosen step {run.chosen['step']}, "
                          + ", ".join(f"{m} {run.chosen['metrics'][m]:.3f}" for m in GAN_METRICS)
                          + f" ({gan['seconds'][variant][-1]:.0f} s)", flush=True)
                    _write(a.out, {**results, "partial": {"store": name, "gan": gan, "classifier_val_auc": auc}})
                    if not a.skip_classifier:
                        c = train_classifier(path, Path(tmp) / f"{name}-clf-{seed}-{variant}", arm="real", fraction=1.0, seed=seed,
                                             params=ClassifierParams(precision=value), progress=False, ctx=ctx)
                        auc[variant].append(c.val_auc)
                        print(f"{name} seed {seed} {variant}: classifier val AUC {c.val_auc:.3f}", flush=True)
            entry: dict[str, Any] = {"path": str(path), "label": label, "gan": {m: _compare(v, *names) for m, v in gan.items()}}
            if not a.skip_classifier:
                entry["classifier_val_auc"] = _compare(auc, *names)
            results["stores"][name] = entry
            _write(a.out, results)
            x, y = names
            rows = [(m, entry["gan"][m]) for m in (*GAN_METRICS, "seconds", "train_seconds", "steps")]
            rows += [("val AUC", entry["classifier_val_auc"])] if not a.skip_classifier else []
            for m, r in rows:
                print(f"{name} {m}: {field}={x} {r[f'{x}_mean']:.3f}±{r[f'{x}_sd']:.3f}, {field}={y} {r[f'{y}_mean']:.3f}±{r[f'{y}_sd']:.3f}, "
                      f"paired diff {r['diff_mean']:+.3f}±{r['diff_se']:.3f} (p={r['paired_t_p']:.2f})", flush=True)
    _write(a.out, results)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
