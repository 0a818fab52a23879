"""``train-classifier``: one classifier per cell of the grid, with the paper's random search.

Training follows the reference (``CNN/classify_tunning.py``) with its bugs fixed: per-image
standardisation, class-balanced batches, float augmentations in ``real+aug`` only (see :mod:`.augment`
and :mod:`.params`: a fixed number of optimiser steps for every arm), RMSprop with
Keras' rho/epsilon, cross-entropy on a 2-way softmax head. Differences, on purpose:

- training runs ``steps`` optimiser steps, not epochs, the same for every arm (equal compute);
  optional early stopping watches the *validation* loss (the reference watched the training loss);
- the checkpoint kept from each trial is the validation with the best validation ROC AUC (ties: lower
  validation loss), and the trial kept is the one with the best such AUC;
- the operating threshold is chosen on validation: ``youden`` maximises sensitivity + specificity
  - 1 (Youden's J), ``f1`` maximises F1 (:func:`lusynth.metrics.classification.choose_threshold`).

Output directory (written atomically)::

    model.pt         {"state_dict", "config", "classes", "positive_class", "preprocessing", ...}
    classifier.json  arm, fraction, seed, chosen trial + hyper-parameters, val AUC/loss, threshold,
                     every trial's result, data digests and counts, MLflow run id
    history.json     per trial, per validation (every eval_every steps): train loss, val loss, val AUC, seconds, img/s
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lusynth.atomic import atomic_dir, dumps_json
from lusynth.classifier.augment import augment_batch, standardize, to_float
from lusynth.classifier.data import LabelledFrames, balanced_epoch, split_frames, training_frames
from lusynth.classifier.params import AUGMENTED_ARMS, SYNTHETIC_ARMS, ClassifierParams
from lusynth.classifier.run import META_FILE, ClassifierRun
from lusynth.data.framestore import open_store
from lusynth.errors import InputError
from lusynth.keys import Cell
from lusynth.metrics.classification import choose_threshold, roc_auc
from lusynth.models.classifier import ClassifierConfig, FrameClassifier, build_classifier
from lusynth.params import as_dict
from lusynth.runtime import RunContext, autocast_for, resolve_precision, retain_freed_memory
from lusynth.stats.scores import patient_scores, patient_threshold
from lusynth.tracking import log_frame_store_input, optional_stage_run, run_name

MODEL_FILE = "model.pt"
HISTORY_FILE = "history.json"
FORMAT_VERSION = 1
PREPROCESSING = {"input": "uint8 frame (S, S)", "scale": "x / 255", "standardize": "per image: (x - mean) / (std + 1e-6)"}


@dataclass
class _Trial:
    index: int
    lr: float
    width: int
    dropout: float
    best_auc: float = float("-inf")
    best_loss: float = float("inf")
    best_step: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    evaluations: list[dict[str, float]] = field(default_factory=list)  # one per validation

    def summary(self) -> dict[str, Any]:
        return {"trial": self.index, "lr": self.lr, "width": self.width, "dropout": self.dropout,
                "val_auc": self.best_auc, "val_loss": self.best_loss, "best_step": self.best_step,
                "steps_run": int(self.evaluations[-1]["step"]) if self.evaluations else 0}


def search_points(params: ClassifierParams, seed: int) -> list[tuple[float, int, float]]:
    """(lr, width, dropout) per trial: trial 0 the configured point, the rest drawn from the space."""
    rng = np.random.default_rng([int(seed), 104729])
    points = [(params.lr, params.width, params.dropout)]
    for _ in range(params.trials - 1):
        points.append((float(rng.choice(params.search_lr)), int(rng.choice(params.search_width)),
                       float(rng.choice(params.search_dropout))))
    return points


def _memory_format(device: str) -> torch.memory_format:
    # measured on 2 CPU cores: channels-last makes the depthwise convs ~1.6x faster (fwd + bwd)
    return torch.channels_last if device == "cpu" else torch.contiguous_format


def make_optimizer(model: torch.nn.Module, *, lr: float, params: ClassifierParams) -> torch.optim.RMSprop:
    """RMSprop with Keras' rho/epsilon. ``foreach``: one multi-tensor op per update step instead of
    a Python loop over the parameters; the same arithmetic element by element (bit-identical,
    tests/classifier/test_train.py), faster on the CPU too, where torch would not choose it."""
    return torch.optim.RMSprop(model.parameters(), lr=lr, alpha=params.rmsprop_alpha, eps=params.rmsprop_eps, foreach=True)


def _to_device(x: torch.Tensor, device: str) -> torch.Tensor:
    return x.to(device).contiguous(memory_format=_memory_format(device))


@torch.no_grad()
def _predict_logits(model: FrameClassifier, frames: torch.Tensor, batch_size: int, device: str) -> torch.Tensor:
    model.eval()
    out = [model(_to_device(standardize(to_float(frames[i : i + batch_size])), device)).float().cpu()
           for i in range(0, len(frames), batch_size)]
    return torch.cat(out)


def _validate(model: FrameClassifier, val_x: torch.Tensor, val_y: torch.Tensor, params: ClassifierParams, device: str) -> tuple[float, float, np.ndarray]:
    logits = _predict_logits(model, val_x, params.eval_batch_size, device)
    loss = float(F.cross_entropy(logits, val_y))
    prob = torch.softmax(logits, 1)[:, 1].numpy()
    return loss, roc_auc(val_y.numpy(), prob), prob


def _batches(labels: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless class-balanced batches: successive balanced epochs cut into ``batch_size`` pieces
    (a piece of fewer than 2 frames is skipped: BatchNorm cannot train on a single frame)."""
    while True:
        order = balanced_epoch(labels, rng)
        for i in range(0, len(order), batch_size):
            if len(order[i : i + batch_size]) >= 2:
                yield order[i : i + batch_size]


def _train_trial(trial: _Trial, train: LabelledFrames, val_x: torch.Tensor, val_y: torch.Tensor, *,
                 image_size: int, params: ClassifierParams, augment: bool, seed: int, device: str, tick: Any,
                 autocast: Any = contextlib.nullcontext) -> None:
    """``params.steps`` optimiser steps whatever the training-set size (equal compute across arms),
    validating every ``params.eval_every`` steps and at the end."""
    torch.manual_seed(int(seed) * 1000 + trial.index)
    gen = torch.Generator().manual_seed(int(seed) * 1000 + trial.index)
    rng = np.random.default_rng([int(seed), trial.index])
    model = build_classifier(ClassifierConfig(image_size=image_size, width=trial.width, dropout=trial.dropout))
    model = model.to(device, memory_format=_memory_format(device))  # type: ignore[call-overload]  # torch stubs lack memory_format
    opt = make_optimizer(model, lr=trial.lr, params=params)
    x_all = torch.from_numpy(train.frames)
    y_all = torch.from_numpy(train.labels)
    aug_kw = dict(p=params.aug_p, gammas=params.gammas, blur_kernels=params.blur_kernels,
                  speckle_fraction=params.speckle_fraction, speckle_delta=params.speckle_delta)
    since_best_loss, lowest_loss = 0, float("inf")
    batches = _batches(train.labels, params.batch_size, rng)
    losses: list[float] = []
    seen, t0, train_seconds = 0, time.perf_counter(), 0.0
    model.train()
    for step in range(1, params.steps + 1):
        t_step = time.perf_counter()
        idx = torch.from_numpy(next(batches))
        x = to_float(x_all[idx])
        if augment:
            x = augment_batch(x, generator=gen, **aug_kw)
        x = _to_device(standardize(x), device)
        with autocast():  # bf16 compute when the precision says so; the loss on float32 logits
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        seen += len(idx)
        train_seconds += time.perf_counter() - t_step
        if step % params.eval_every and step != params.steps:
            continue
        val_loss, val_auc, _ = _validate(model, val_x, val_y, params, device)
        model.train()
        trial.evaluations.append({"step": step, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                                  "val_loss": val_loss, "val_auc": val_auc, "seconds": time.perf_counter() - t0,
                                  "train_img_per_s": seen / max(train_seconds, 1e-9)})
        losses, seen, t0, train_seconds = [], 0, time.perf_counter(), 0.0
        auc_key = -np.inf if np.isnan(val_auc) else val_auc
        if auc_key > trial.best_auc or (auc_key == trial.best_auc and val_loss < trial.best_loss):
            trial.best_auc, trial.best_loss, trial.best_step = float(auc_key), val_loss, step
            trial.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        tick(trial, step, val_loss, val_auc)
        if val_loss < lowest_loss - 1e-6:
            lowest_loss, since_best_loss = val_loss, 0
        else:
            since_best_loss += 1
            if params.patience and since_best_loss >= params.patience:  # optional early stopping (breaks equal compute)
                break


@contextlib.contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Any]:
    from lusynth.progress import progress

    with progress(total, label, enabled=enabled, unit="validations") as advance:

        def tick(trial: _Trial, step: int, val_loss: float, val_auc: float) -> None:
            advance(1, trial=trial.index, step=step, val_loss=val_loss, val_auc=val_auc)

        yield tick


def train_classifier(
    frames_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    arm: str,
    fraction: float,
    seed: int,
    ratio: float = 1.0,
    gan_seed: int = 0,
    fold: int = 0,
    generator: str = "dcgan",
    synthetic_dirs: Sequence[str | os.PathLike[str]] = (),
    params: ClassifierParams | None = None,
    progress: bool = True,
    ctx: RunContext | None = None,
) -> ClassifierRun:
    """Train the classifier of one arm at one training fraction and seed; write ``out_dir``.

    ``ratio``: synthetic frames per real frame (real+synthetic only); ``gan_seed``: the GAN seed
    whose synthetic set it reads (synthetic arms only; recorded, the sets are passed in
    ``synthetic_dirs``); ``fold``: the outer fold; ``generator``: the family of the GANs that made
    those sets (synthetic arms only); all recorded in its :class:`~lusynth.keys.Cell`."""
    params = params or ClassifierParams()
    ctx = ctx or RunContext()
    # one thread by default: this small network gains little from a second one, and on 2 shared
    # cores two threads were much slower (benchmarks/bench_classifier.py)
    device, _ = ctx.start(device="auto", threads=1)
    precision = resolve_precision(params.precision, device)
    real = open_store(frames_dir)
    if real.kind != "real":
        raise InputError(f"{frames_dir}: expected the real frame store from `lusynth ingest`, got kind {real.kind!r}")
    synthetic = [open_store(d) for d in synthetic_dirs]
    # canonical: the ratio, GAN seed and family its arm uses
    cell = Cell(arm, fraction, seed, ratio=ratio, gan_seed=gan_seed, fold=fold, generator=generator)
    withheld = _withheld(synthetic) if arm in SYNTHETIC_ARMS else []
    if withheld:  # a generator of this cell was withheld: nothing of it was released, so the cell is not trained
        return _skip(out_dir, cell, real, "; ".join(withheld), progress=progress)
    train = training_frames(real, arm=arm, fraction=fraction, synthetic=synthetic, ratio=cell.ratio,
                            synthetic_max_per_class=params.synthetic_max_per_class, seed=seed, fold=fold)
    val = split_frames(real, "val", fold=fold)
    val_x, val_y = torch.from_numpy(val.frames), torch.from_numpy(val.labels)
    out_dir = Path(out_dir)
    positive = real.header.get("positive_class") or real.classes[-1]
    tags = cell.as_dict()
    augment = arm in AUGMENTED_ARMS
    trials = [_Trial(i, lr, w, d) for i, (lr, w, d) in enumerate(search_points(params, seed))]

    # on the CPU glibc keeps the freed activation buffers for the next step (no page faults)
    retain = retain_freed_memory() if device == "cpu" else contextlib.nullcontext()
    # the SQLite store sits beside out_dir: out_dir itself is replaced atomically at the end
    with retain, optional_stage_run(ctx.track, stage="train_classifier", local_dir=out_dir.parent, out_dir=out_dir, run_name=run_name("train_classifier", cell),
                            params={**tags, **as_dict(params), "n_train": len(train), "real_digest": real.digest}, tags=tags) as tr, \
            _progress(progress, params.trials * -(-params.steps // params.eval_every), f"classifier {cell}") as tick:
        # what it read: the real store (training and validation frames) and each synthetic set its arm used
        log_frame_store_input(tr, real, "training")
        for syn in synthetic:
            if syn.digest in train.digests.values():
                log_frame_store_input(tr, syn, "synthetic")
        for trial in trials:
            _train_trial(trial, train, val_x, val_y, image_size=real.image_size, params=params, augment=augment, seed=seed,
                         device=device, tick=tick, autocast=autocast_for(device, precision))
            for e in trial.evaluations:
                tr.log_metrics({f"trial{trial.index}.{k}": v for k, v in e.items() if k != "step"}, step=int(e["step"]))
        best = max(trials, key=lambda t: (t.best_auc, -t.best_loss))
        assert best.best_state is not None  # every trial validates at least once (at its last step)
        config = ClassifierConfig(image_size=real.image_size, width=best.width, dropout=best.dropout)
        model = build_classifier(config).to(device, memory_format=_memory_format(device))  # type: ignore[call-overload]  # torch stubs lack memory_format
        model.load_state_dict(best.best_state)
        _, _, val_prob = _validate(model, val_x, val_y, params, device)
        threshold = choose_threshold(val.labels, val_prob, rule=params.threshold_rule)
        # the patient-level threshold, chosen on the inner validation patients' scores at the level
        # evaluation applies it (never the frame threshold reused on patient scores)
        val_rows = real.manifest.iloc[real.view(fold, "val")]
        val_patients = patient_scores(val.labels, val_prob, val_rows["patient_id"].astype(str).to_numpy(),
                                      val_rows["video_id"].astype(str).to_numpy())
        patient_thr = float(patient_threshold(val_patients, rule=params.threshold_rule))
        repeat, outer_fold = real.split_of(fold)
        hyper = {"lr": best.lr, "width": best.width, "dropout": best.dropout}
        meta = {
            "format_version": FORMAT_VERSION,
            **cell.as_dict(), "augmented": augment,
            "image_size": real.image_size, "classes": real.classes, "positive_class": positive,
            "trial": best.index, "hyperparams": hyper, "best_step": best.best_step,
            "val_auc": best.best_auc, "val_loss": best.best_loss,
            "threshold": threshold, "threshold_rule": params.threshold_rule, "patient_threshold": patient_thr,
            "repeat": repeat, "outer_fold": outer_fold, "folds": real.folds,
            "trials": [t.summary() for t in trials],
            "data": {"real_digest": real.digest, "store_digests": train.digests, "train_counts": train.counts,
                     "n_train": len(train), "n_val": len(val),
                     "patients": {"train": sorted(real.patients(real.view(fold, "train", fraction=fraction))) if arm != "synthetic" else [],
                                  "val": sorted(real.patients(real.view(fold, "val")))}},
            "params": as_dict(params), "device": device, "precision": precision,
            "mlflow_run_id": tr.run_id,
        }
        history = {"trials": [{"trial": t.index, "lr": t.lr, "width": t.width, "dropout": t.dropout, "evaluations": t.evaluations}
                              for t in trials]}
        with atomic_dir(out_dir) as tmp:
            torch.save({"format_version": FORMAT_VERSION, "state_dict": best.best_state, "config": asdict(config),
                        "classes": real.classes, "positive_class": positive, "threshold": threshold,
                        "preprocessing": PREPROCESSING}, tmp / MODEL_FILE)
            ClassifierRun(path=out_dir, meta=meta).save(tmp)
            (tmp / HISTORY_FILE).write_text(dumps_json(history))
            tr.log_metrics({"val_auc": best.best_auc, "val_loss": best.best_loss, "threshold": threshold})
        # from the output, not the temporary folder: a spooled artifact is uploaded later, by path
        for name in (META_FILE, HISTORY_FILE, MODEL_FILE):
            tr.log_artifact(out_dir / name)
    return ClassifierRun(path=out_dir, meta=meta)


def _withheld(synthetic: Sequence[Any]) -> list[str]:
    """Per class a synthetic store withholds (:attr:`FrameStore.withheld`, not the GAN code's
    ``SyntheticSet``, which would put that code into this stage's cache key): which GAN and why."""
    return [f"the {p.get('generator') or 'dcgan'} GAN of class {label!r} at fraction {float(p['fraction']):g} (GAN seed "
            f"{p.get('gan_seed', 0)}, fold {p.get('fold', 0)}) was withheld by generate: {p['withheld']}"
            for store in synthetic for label, p in sorted(store.withheld.items())]


def _skip(out_dir: str | os.PathLike[str], cell: Cell, real: Any, reason: str, *, progress: bool) -> ClassifierRun:
    """Write the record of a cell that is not trained (no weights): evaluate and export leave it out and the report names it."""
    from lusynth.progress import note

    out_dir = Path(out_dir)
    meta = {"format_version": FORMAT_VERSION, **cell.as_dict(), "skipped": reason, "image_size": real.image_size,
            "classes": real.classes, "data": {"real_digest": real.digest}}
    with atomic_dir(out_dir) as tmp:
        ClassifierRun(path=out_dir, meta=meta).save(tmp)
    note("train-classifier", f"{cell}: skipped, not trained: {reason}", enabled=progress)
    return ClassifierRun(path=out_dir, meta=meta)


@dataclass
class LoadedClassifier:
    """A trained classifier read back from its directory, ready for inference."""

    path: Path
    model: FrameClassifier
    config: ClassifierConfig
    classes: list[str]
    positive_class: str
    threshold: float
    meta: dict[str, Any]
    device: str = "cpu"

    @property
    def arm(self) -> str:
        return str(self.meta.get("arm"))

    @property
    def fraction(self) -> float:
        return float(self.meta.get("fraction", float("nan")))

    @property
    def seed(self) -> int:
        return int(self.meta.get("seed", 0))

    @property
    def cell(self) -> Cell:
        """Its cell of the grid (arm, fraction, seed, ratio, GAN seed, fold)."""
        return Cell.from_dict(self.meta)

    def predict_proba(self, frames: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Probability of the positive class for uint8 frames (N, S, S)."""
        logits = _predict_logits(self.model, torch.from_numpy(np.array(frames, dtype=np.uint8)), batch_size, self.device)
        return torch.softmax(logits, 1)[:, 1].numpy().astype(np.float64)

    @torch.no_grad()
    def embed(self, frames: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Pooled features (N, embed_dim) for uint8 frames (N, S, S): the space for FID/KID/1-NN."""
        self.model.eval()
        x = torch.from_numpy(np.array(frames, dtype=np.uint8))
        out = [self.model.embed(_to_device(standardize(to_float(x[i : i + batch_size])), self.device)).float().cpu()
               for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, self.config.embed_dim))


def load_classifier(path: str | os.PathLike[str], *, device: str = "cpu") -> LoadedClassifier:
    """Read a ``train-classifier`` output directory back (model weights + metadata)."""
    import json

    path = Path(path)
    if not (path / MODEL_FILE).is_file() and (path / META_FILE).is_file() and (run := ClassifierRun.load(path)).skipped:
        raise InputError(f"{path}: classifier {run.cell} was not trained (skipped: {run.skipped})")
    if not (path / MODEL_FILE).is_file() or not (path / META_FILE).is_file():
        raise InputError(f"{path}: not a classifier directory (needs {MODEL_FILE} and {META_FILE}); run `lusynth train-classifier --out {path}`")
    blob = torch.load(path / MODEL_FILE, map_location=device, weights_only=True)
    if blob.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: classifier format {blob.get('format_version')!r}, this lusynth reads {FORMAT_VERSION}; retrain it")
    config = ClassifierConfig(**blob["config"])
    model = build_classifier(config).to(device, memory_format=_memory_format(device))  # type: ignore[call-overload]  # torch stubs lack memory_format
    model.load_state_dict(blob["state_dict"])
    model.eval()
    meta = json.loads((path / META_FILE).read_text())
    return LoadedClassifier(path=path, model=model, config=config, classes=list(blob["classes"]),
                            positive_class=str(blob["positive_class"]), threshold=float(blob["threshold"]),
                            meta=meta, device=device)
