"""``generate``: synthetic frames from trained GANs, filtered for near-copies, as a frame store.

For each GAN directory (one class each) the chosen checkpoint's generator (eval mode) turns
latents into frames. Latent ``i`` of a class is ``numpy.random.default_rng([seed, i])``'s
``standard_normal(nz)``, so any frame can be regenerated from its provenance alone (generator
run id, checkpoint, seed, latent index). Near-copies of training frames are dropped (the
:class:`~lusynth.metrics.nearcopy.NearCopyPolicy` fitted per class) and generation tops up with
further latents until ``n_per_class`` frames are kept. The output is a frame store with
``kind='synthetic'``, rows ``split='synthetic'``, ``source='gan'`` and provenance columns; its
typed view is :class:`~lusynth.gan.synthetic.SyntheticSet` (what :func:`generate` returns and later stages load).

A generator whose frames the filter keeps rejecting (fewer than ``n_per_class`` pass after
``max_rounds`` rounds of latents) is treated as memorising its training patients: its class is *withheld*. The
set then releases no frame of that class (its first round is kept as rows ``split='withheld'``
for the audit, which reads the unfiltered output), the header says why, and the run goes on:
the classifiers that needed those frames are skipped and the report names them (one such GAN of
a grid no longer stops ``lusynth run``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lusynth.atomic import atomic_dir
from lusynth.data.framestore import FrameStore, FrameStoreWriter, open_store
from lusynth.errors import InputError
from lusynth.gan.checkpoint import checkpoint_path, load_generator
from lusynth.gan.params import GenerateParams
from lusynth.gan.run import GanRun
from lusynth.gan.step import sample_frames
from lusynth.gan.synthetic import NEAR_COPIES_DIR, SyntheticSet
from lusynth.metrics.nearcopy import NearCopyPolicy
from lusynth.outputs import mark_output
from lusynth.params import as_dict
from lusynth.progress import note
from lusynth.runtime import RunContext
from lusynth.util import slugify

__all__ = ["export_png", "generate", "latents"]



def latents(seed: int, indices: Sequence[int], nz: int) -> torch.Tensor:
    """Latents (n, nz, 1, 1) for latent indices; each depends only on (seed, index)."""
    z = np.stack([np.random.default_rng([seed, int(i)]).standard_normal(nz) for i in indices]).astype(np.float32)
    return torch.from_numpy(z).view(len(indices), nz, 1, 1)


def _sample(g: torch.nn.Module, seed: int, indices: Sequence[int], nz: int, device: str, batch_size: int) -> np.ndarray:
    """uint8 frames for the given latent indices (a seam for tests that plant copies)."""
    return sample_frames(g, latents(seed, indices, nz).to(device), batch_size=batch_size)


def generate(
    gan_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    frames_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    params: GenerateParams | None = None,
    near_copy: NearCopyPolicy | None = None,
    ctx: RunContext | None = None,
) -> SyntheticSet:
    """Write ``params.n_per_class`` filtered synthetic frames per GAN (class) to the store ``out_dir``.

    ``frames_dir`` must be the frame store the GANs were trained on (checked by digest): its
    training frames (the GAN's fold and fraction) define near-copies and the fold's inner validation
    frames the threshold (``near_copy``); no test patient of the fold is read.
    """
    params = params or GenerateParams()
    near_copy = near_copy or NearCopyPolicy()
    ctx = ctx or RunContext()
    device, _ = ctx.start(device="auto")
    gan_dirs = [Path(gan_dir)] if isinstance(gan_dir, (str, os.PathLike)) else [Path(p) for p in gan_dir]
    if not gan_dirs:
        raise InputError("generate: give at least one --gan directory")
    store = open_store(frames_dir)
    infos = []
    for gd in gan_dirs:
        info = GanRun.load(gd)
        if info.frames_digest != store.digest:
            raise InputError(f"{gd} was trained on frames {info.frames_digest}, but {store.path} is {store.digest}; pass the same --frames")
        infos.append((gd, info))
    labels = [i.label for _, i in infos]
    if len(set(labels)) != len(labels):
        raise InputError(f"generate: several GANs for one class ({labels}); give one GAN directory per class")

    from lusynth.tracking import log_frame_store_input, optional_stage_run, run_name

    dropped_first: list[tuple[np.ndarray, str, int]] = []  # near-copies among the first-round latents
    out_dir = Path(out_dir)
    # the run is open for the whole work, so its duration is the stage's; the SQLite store sits beside
    # out_dir, which is written atomically
    with optional_stage_run(ctx.track, stage="generate", local_dir=out_dir.parent, out_dir=out_dir,
                            run_name=run_name("generate", [i.key for _, i in infos]),
                            params={**as_dict(params), "near_copy": as_dict(near_copy)},
                            tags={"source_frames_digest": store.digest,
                                  "generators": ",".join(i.run_id or "" for _, i in infos)}) as tr:
        log_frame_store_input(tr, store, "training")
        per_class = _generate_all(store, infos, out_dir, params, near_copy, device, dropped_first)
        for label, p in per_class.items():
            tr.log_metrics({f"{label}.kept": p["kept"], f"{label}.dropped_near_copies": p["dropped_near_copies"],
                            f"{label}.threshold": p["threshold"]})
        tr.log_dict(per_class, "privacy_filter.json")
    return SyntheticSet.load(out_dir)


def _generate_all(store: FrameStore, infos: list[tuple[Path, Any]], out_dir: Path, params: GenerateParams, near_copy: NearCopyPolicy,
                  device: Any, dropped_first: list[tuple[np.ndarray, str, int]]) -> dict[str, dict[str, Any]]:
    """Sample each GAN's class through the near-copy filter into the synthetic store at ``out_dir``; per class: what was kept."""
    per_class: dict[str, dict[str, Any]] = {}
    with FrameStoreWriter(out_dir, image_size=store.image_size) as writer:
        for gd, info in infos:
            label, fraction = info.label, info.fraction
            g, cfg = load_generator(gd, params.which)
            g.to(device)
            ckpt = checkpoint_path(gd, params.which).relative_to(gd).as_posix()
            fold = info.key.fold
            train_rows = store.view(fold, "train", label=label, fraction=fraction)
            train = np.asarray(store.frames[train_rows])
            unseen = np.asarray(store.frames[store.view(fold, "val", label=label)])
            if len(unseen) == 0:
                raise InputError(f"{store.path}: no inner validation frames of class {label!r} in fold {fold}; the privacy filter needs them")
            filt = near_copy.fit(train, unseen, store.manifest["patient_id"].to_numpy()[train_rows])
            kept_frames: list[np.ndarray] = []
            kept_index: list[int] = []
            first_round = params.n_per_class  # latents 0..n-1: the unfiltered sample the audit reads
            next_index, dropped, rounds = 0, 0, 0
            first_frames: list[tuple[np.ndarray, int, bool]] = []  # the first round: (frame, latent, near-copy)
            withheld = ""
            while len(kept_index) < params.n_per_class:
                if rounds == params.max_rounds:
                    withheld = (f"only {len(kept_index)} of {params.n_per_class} frames passed the near-copy filter after {next_index} "
                                f"latents ({dropped} dropped as nearer a training frame than unseen patients come, DCR < "
                                f"{filt.threshold:.3g}): the generator ({ckpt}) draws nearer its training patients than unseen patients come, "
                                "so it is treated as memorising and none of its frames are released. Alone: `lusynth generate --which STEP` (an earlier checkpoint); in a pipeline run the "
                                "classifiers that need them are skipped")
                    break
                need = params.n_per_class - len(kept_index)
                idx = list(range(next_index, next_index + max(need, 1)))
                next_index += len(idx)
                rounds += 1
                frames = _sample(g, params.seed, idx, cfg.nz, device, params.batch_size)
                copies, _ = filt.mask(frames)
                dropped += int(copies.sum())
                for f, i, c in zip(frames, idx, copies, strict=True):
                    if i < first_round:
                        first_frames.append((f, i, bool(c)))
                    if not c and len(kept_index) < params.n_per_class:
                        kept_frames.append(f)
                        kept_index.append(i)
            run_id = info.run_id or ""
            if withheld:
                note("generate", f"{label} (fraction {fraction:g}, fold {fold}): WITHHELD: {withheld}")
                # nothing released; the whole first round stays for the audit of the unfiltered output
                kept_frames, kept_index = [], []
                for f, i, _ in first_frames:
                    writer.append(f, {
                        "frame_id": f"withheld-{label}-{run_id[:12] or gd.name}-{i:07d}", "patient_id": "synthetic",
                        "video_id": run_id or gd.name, "frame_index": i, "label": label, "split": "withheld",
                        "train_fraction": "", "source": "gan", "generator_run_id": run_id, "checkpoint": ckpt,
                        "seed": params.seed, "latent_index": i, "gan_fraction": fraction,
                    })
            else:
                dropped_first.extend((f, label, i) for f, i, c in first_frames if c)
            for f, i in zip(kept_frames, kept_index, strict=True):
                writer.append(f, {
                    "frame_id": f"syn-{label}-{run_id[:12] or gd.name}-{i:07d}", "patient_id": "synthetic",
                    "video_id": run_id or gd.name, "frame_index": i, "label": label, "split": "synthetic",
                    "train_fraction": "", "source": "gan", "generator_run_id": run_id, "checkpoint": ckpt,
                    "seed": params.seed, "latent_index": i, "gan_fraction": fraction,
                })
            per_class[label] = {
                "gan_dir": str(gd), "generator_run_id": run_id, "checkpoint": ckpt, "fraction": fraction,
                "gan_seed": info.key.gan_seed, "fold": info.key.fold, "generator": info.key.generator,
                "kept": len(kept_index), "generated": next_index, "dropped_near_copies": dropped,
                "threshold": filt.threshold, "near_copy": as_dict(near_copy), "rounds": rounds,
                "first_round": first_round, **({"withheld": withheld} if withheld else {}),
            }
        writer.finish(
            kind="synthetic", classes=store.classes, positive_class=store.header.get("positive_class"),
            extra_header={"source_frames_digest": store.digest, "generate": as_dict(params), "privacy_filter": per_class,
                          "unfiltered": {"near_copies": NEAR_COPIES_DIR, "first_round": first_round}},
        )
    # what the filter removed from the first round, so an audit sees the generator's unfiltered output
    _write_near_copies(out_dir / NEAR_COPIES_DIR, dropped_first, store)
    return per_class


def _write_near_copies(target: Path, dropped: list[tuple[np.ndarray, str, int]], store: FrameStore) -> None:
    from lusynth.data.framestore import write_store

    frames = np.stack([f for f, _, _ in dropped]) if dropped else np.zeros((0, store.image_size, store.image_size), np.uint8)
    rows = [{"frame_id": f"near-copy-{label}-{i:07d}", "patient_id": "synthetic", "video_id": "", "frame_index": i, "label": label,
             "split": "near_copy", "train_fraction": "", "source": "gan", "latent_index": i} for _, label, i in dropped]
    write_store(target, frames, rows, kind="near_copies", classes=store.classes, positive_class=store.header.get("positive_class"))


def export_png(store_dir: str | os.PathLike[str], png_dir: str | os.PathLike[str]) -> int:
    """Write every released frame of a store (not a withheld class's) as ``png_dir/<label>/<frame_id>.png`` (atomically); return the count."""
    from PIL import Image

    store = open_store(store_dir)
    labels = store.manifest["label"].to_numpy()
    ids = store.manifest["frame_id"].to_numpy()
    released = np.flatnonzero(store.manifest["split"].to_numpy() != "withheld")  # a withheld class's frames are not released
    with atomic_dir(png_dir) as tmp:
        for i in released:
            d = tmp / slugify(labels[i], replacement="_")
            d.mkdir(exist_ok=True)
            Image.fromarray(np.asarray(store.frames[i])).save(d / (slugify(ids[i], replacement="_") + ".png"))
        mark_output(tmp, "generate.png")  # a later `generate --png` here may replace it
    return len(released)
