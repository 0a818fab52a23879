"""``train-gan``: one unconditional GAN for one class at one training fraction (as in the paper).

The generator family is the key's ``generator`` (:mod:`lusynth.gan.families`): the paper's DCGAN, or
FastGAN-lite (:mod:`lusynth.models.fastgan`, its own step); everything below is shared. For the
DCGAN the loop is the paper's (BCE, non-saturating G loss, Adam(0.5, 0.999), separate lr for G and D,
D updated on a real and a fake batch, then G), plus switchable, measured improvements
(DiffAugment, an EMA copy of G) and the machinery a pipeline needs: resumable atomic checkpoints
with RNG state, non-finite loss detection, fidelity against held-out validation frames with an
automatic checkpoint choice, and MLflow tracking through :mod:`lusynth.tracking`.

:func:`train_gan` reads top to bottom: a :class:`GanTrainer` holds the run's state and each of
its methods is one step (resume or start, an epoch, an evaluation, a checkpoint, the finish);
:func:`~lusynth.gan.step.train_step` (:mod:`lusynth.gan.step`; FastGAN's in :mod:`lusynth.models.fastgan`)
is the pure update of G and D on one batch.

Output directory (the contract other stages rely on)::

    gan.json               summary, written last: label, fraction, params, network config (with its
                           ``family``: dcgan | fastgan), device, frames digest,
                           MLflow run id, chosen checkpoint + the selection rule and its inputs
    fidelity_history.json  one entry per evaluation: step, epoch, mmd_pixels, nn1_pixels,
                           mmd_embed, nn1_embed, memorisation_rate, ...
                           (these two are the stage artefact :class:`~lusynth.gan.run.GanRun`:
                           other stages read them with ``GanRun.load(dir)``)
    chosen.json            the chosen checkpoint (a file under checkpoints/)
    checkpoints/           last.pt (full state for --resume) and step_*.pt (per evaluation)
    samples/               step_*.png sample grids (fixed latents)
    embedding.pt           the fidelity embedding net trained here (lusynth.models.embedding)
    mlruns.db, mlartifacts/  the local MLflow store when MLFLOW_TRACKING_URI is not set

Determinism: with the same frames, params and seed on the same machine (same thread count) the
weights are bit-identical, and a run killed at any point and resumed with ``resume=True`` ends
with the same weights as an uninterrupted one: ``last.pt`` is written at an epoch end (after
every evaluation, after the last epoch, and at least every ``checkpoint_seconds``) with all RNG
states, and each epoch's shuffling comes from its own generator seeded by (seed, epoch).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lusynth.atomic import atomic_write_json
from lusynth.data.framestore import FrameStore, open_store
from lusynth.errors import InputError
from lusynth.gan.checkpoint import (
    CHECKPOINT_DIR,
    CHOSEN_FILE,
    LAST_FILE,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
    step_file,
)
from lusynth.gan.diffaugment import parse_policy
from lusynth.gan.ema import EMA
from lusynth.gan.evaluation import balanced_real_subset, fidelity_report, make_grid
from lusynth.gan.families import build_networks as family_networks
from lusynth.gan.families import config_dict, fit_problem, network_config, step_function
from lusynth.gan.families import flops_per_image as family_flops
from lusynth.gan.mirror import CheckpointMirror
from lusynth.gan.outputs import SAMPLES_DIR, check_resumable, clear_outputs, embedding_net, save_png
from lusynth.gan.params import GanParams, family_fields
from lusynth.gan.run import HISTORY_FILE, GanRun
from lusynth.gan.selection import choose
from lusynth.gan.step import NonFiniteLossError, _to_unit, build_networks, sample_frames, train_step
from lusynth.keys import GanKey
from lusynth.metrics.nearcopy import NearCopyPolicy
from lusynth.models.dcgan import count_params
from lusynth.models.embedding import EmbeddingNet, embed
from lusynth.params import as_dict
from lusynth.progress import Advance
from lusynth.progress import progress as progress_bar
from lusynth.runtime import RunContext, autocast_for, resolve_precision, retain_freed_memory

if TYPE_CHECKING:
    from lusynth.tracking import Tracker

# the step layer's names are re-exported: `from lusynth.gan.train import train_step` keeps working
__all__ = ["GanRun", "GanTrainer", "NonFiniteLossError", "build_networks", "sample_frames", "train_gan", "train_step"]



def _select_frames(store: FrameStore, label: str, fraction: float, fold: int = 0) -> dict[str, np.ndarray]:
    """This class's frames inside outer split ``fold``: its inner training patients at ``fraction``
    (what G learns) and its inner validation patients (fidelity, checkpoint choice and the
    memorisation threshold). The fold's test patients are never read here."""
    if label not in store.classes:
        raise InputError(f"--label {label!r}: {store.path} has classes {store.classes}")
    idx = {
        "train": store.view(fold, "train", label=label, fraction=fraction),
        "val": store.view(fold, "val", label=label),
    }
    if len(idx["train"]) < 2:
        raise InputError(
            f"{store.path}: only {len(idx['train'])} training frames of class {label!r} at fraction {fraction} in fold {fold}; "
            "check --fraction against the store's training fractions"
        )
    if len(idx["val"]) < 2:
        raise InputError(
            f"{store.path}: class {label!r} has {len(idx['val'])} inner validation frames in fold {fold}; fidelity and the "
            "memorisation check need >= 2; re-ingest with more patients"
        )
    return idx


class GanTrainer:
    """The state of one ``train-gan`` run and the steps :func:`train_gan` composes.

    Holds the frame store and the frames it trains and evaluates on, the networks, optimisers and
    EMA, the fidelity evaluator's fixed inputs (validation frames and their embeddings, latents),
    the counters (``step``, ``epoch`` = epochs completed, ``history``) and, inside
    :meth:`tracking`, the MLflow tracker. Construction only reads and checks the inputs;
    :meth:`resume_or_start` prepares ``out_dir`` and builds the rest.
    """

    # built by resume_or_start: the data (uint8, as the frame store holds it) ...
    train_u8: np.ndarray  # (n, S, S) this class's training frames at this fraction
    frames_t: torch.Tensor  # the same on the device, converted to [-1, 1] per batch
    # ... the fidelity evaluator's fixed inputs ...
    real_val: np.ndarray  # (n_fake, S, S) a class-balanced subset of the validation frames
    val_clips: np.ndarray | None  # their clips (the 1-NN test leaves a whole clip out)
    reference_dcr: np.ndarray  # unseen patients' DCR to the training frames (the memorisation threshold; NearCopyPolicy.reference_dcr)
    emb: EmbeddingNet
    real_embed: np.ndarray
    z_eval: torch.Tensor  # (n_fake, nz, 1, 1) fixed latents
    # ... and the networks
    g: torch.nn.Module
    d: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    memory_format: torch.memory_format
    ema: EMA | None
    g_eval: torch.nn.Module  # the EMA copy if there is one, else G: what is evaluated and shipped
    policy: tuple[str, ...]  # DiffAugment ops
    train_step: Callable[..., tuple[torch.Tensor, ...]]  # the family's step (lusynth.gan.families.step_function)

    def __init__(self, frames_dir: str | Path, out_dir: str | Path, *, label: str, fraction: float, gan_seed: int = 0, fold: int = 0,
                 generator: str = "dcgan", params: GanParams | None = None, near_copy: NearCopyPolicy | None = None, mirror: str | None = None,
                 ctx: RunContext | None = None) -> None:
        p = params or GanParams()
        # the grid's GAN seed k trains with seed gan.seed + k: several generators per (class, fraction)
        self.params = p = dataclasses.replace(p, seed=p.seed + int(gan_seed)) if gan_seed else p
        self.near_copy = near_copy or NearCopyPolicy()  # what counts as a near-copy in checkpoint selection
        self.ctx = ctx or RunContext()
        self.device, self.threads = self.ctx.start(device="auto")
        self.out_dir = Path(out_dir)
        self.label, self.fraction, self.mirror = label, fraction, mirror
        self.key = GanKey(label, fraction, gan_seed, fold, generator)
        self.store = open_store(frames_dir)
        family = self.key.generator
        problem = fit_problem(p, self.store.image_size, family)
        if problem:  # a frame size or parameter that does not fit this family: one line naming the store and the fix
            raise InputError(f"{self.store.path}: {problem}")
        self.idx = _select_frames(self.store, label, fraction, fold)
        self.cfg = network_config(p, self.store.image_size, family)  # the family's network (DCGANConfig | FastGANConfig)
        self.train_step = step_function(self.cfg)
        # the family is recorded with the fields it reads (not another family's), so a resume as another family is refused
        self.params_dict = {**family_fields(p, family), "generator": family}
        self.last_path = self.out_dir / CHECKPOINT_DIR / LAST_FILE
        self.mirror_info: dict[str, Any] = {"uri": mirror, "restored": False, "pushes": 0} if mirror else {}
        # the precision this run trains in ("auto" resolved on this device); a resume must match it
        self.precision = resolve_precision(p.precision, self.device)
        self.autocast: Any = autocast_for(self.device, self.precision)
        self.step, self.epoch = 0, 0  # steps taken, epochs completed
        self.history: list[dict[str, Any]] = []  # one entry per evaluation (fidelity_history.json)
        self.resumed, self.resumed_from_run = False, ""
        self.images, self.train_seconds = 0, 0.0  # this session's, for images per second
        self.saved_epoch, self.saved_at = 0, time.monotonic()  # the resumable state on disk: its epoch, when written
        self.tracker: Tracker | None = None

    # --- setup ---

    def resume_or_start(self, *, resume: bool) -> None:
        """Continue from ``last.pt`` (restored from the mirror first when ``out_dir`` lacks it) if
        ``resume`` and there is one, else clear ``out_dir``'s outputs; then load the data and build
        the networks, restoring weights, optimisers, RNG states and counters on a resume."""
        if resume and self.mirror and not self.last_path.is_file():
            self.mirror_info["restored"] = CheckpointMirror(self.mirror).pull(self.out_dir)
        state = load_checkpoint(self.last_path) if resume and self.last_path.is_file() else None
        if state is not None:
            check_resumable(state, self.store, self.label, self.fraction, self.params_dict, self.last_path,
                            precision=self.precision, fold=self.key.fold)
        else:
            clear_outputs(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
        (self.out_dir / SAMPLES_DIR).mkdir(exist_ok=True)
        if self.device.startswith("cuda"):
            # reproducible kernels; the speed cost at DCGAN sizes is small
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        self._load_data(reuse_embedding=state is not None)
        self._build_networks(state)

    def _load_data(self, *, reuse_embedding: bool) -> None:
        """Training frames (uint8 on the device, converted per batch) and the evaluator's fixed inputs."""
        p, store, idx = self.params, self.store, self.idx
        self.train_u8 = np.asarray(store.frames[idx["train"]])
        self.frames_t = torch.from_numpy(self.train_u8).to(self.device)
        val_all = np.asarray(store.frames[idx["val"]])
        n_fake = min(p.n_eval, len(val_all))
        val_subset = balanced_real_subset(len(val_all), n_fake, seed=p.seed)
        self.real_val = val_all[val_subset]
        # each validation frame's clip: the real side of the 1-NN test leaves a whole clip out
        val_clips = store.manifest["video_id"].to_numpy()[idx["val"]][val_subset]
        self.val_clips = val_clips if len(set(val_clips)) > 1 else None
        # unseen patients -> train: the near-copy threshold, from the fold's inner validation patients and
        # (pooled) the training patients left out one at a time; its test patients are read only by evaluation
        self.reference_dcr = self.near_copy.reference_dcr(self.train_u8, val_all, store.manifest["patient_id"].to_numpy()[idx["train"]])
        self.emb = embedding_net(store, store.view(self.key.fold, "train", fraction=self.fraction), p, self.out_dir, reuse=reuse_embedding)
        self.real_embed = embed(self.emb, self.real_val)
        # fixed evaluation latents from their own generator: evaluations never touch the training RNG
        self.z_eval = torch.randn(n_fake, self.cfg.nz, 1, 1, generator=torch.Generator().manual_seed(p.seed + 7919)).to(self.device)

    def _build_networks(self, state: dict[str, Any] | None) -> None:
        """G, D, optimisers and EMA from the seed, then, on a resume, everything ``last.pt`` holds."""
        torch.manual_seed(self.params.seed)
        self.g, self.d, self.opt_g, self.opt_d, self.memory_format = family_networks(self.cfg, self.params, self.device)
        self.ema = EMA(self.g, self.params.ema_decay) if self.params.ema_decay > 0 else None
        self.policy = parse_policy(self.params.diffaugment)
        if state is not None:
            self.g.load_state_dict(state["generator"])
            self.d.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            if self.ema is not None:
                self.ema.load_state_dict(state["generator_ema"])
            set_rng_state(state["rng"])
            self.step, self.epoch = int(state["step"]), int(state["epoch"])
            self.saved_epoch = self.epoch
            self.history = [dict(h) for h in state["history"]]
            self.resumed, self.resumed_from_run = True, state.get("run_id", "")
        self.g_eval = self.ema.shadow if self.ema is not None else self.g  # the generator that is evaluated and shipped

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: a last batch of one frame is skipped (BatchNorm cannot train on it)."""
        n = len(self.train_u8)
        return sum(1 for i in range(0, n, self.params.batch_size) if n - i >= 2)

    @property
    def schedule(self) -> tuple[int, int]:
        """(epochs, max_steps) of this family: the ``gan`` section's, times ``fastgan_step_share`` for
        FastGAN-lite (at least one epoch; a step cap of 0 stays none)."""
        p = self.params
        share = p.fastgan_step_share if self.key.generator == "fastgan" else 1.0
        if share == 1.0:
            return p.epochs, p.max_steps
        return max(1, round(p.epochs * share)), (max(1, round(p.max_steps * share)) if p.max_steps else 0)

    @property
    def planned_epochs(self) -> int:
        """Epochs this run trains: the family's ``epochs`` (:attr:`schedule`), or fewer when its
        ``max_steps`` caps the optimiser steps (whole epochs, so resume and shuffling stay per epoch)."""
        epochs, max_steps = self.schedule
        if max_steps == 0:
            return epochs
        return max(1, min(epochs, math.ceil(max_steps / max(self.steps_per_epoch, 1))))

    @property
    def eval_every(self) -> int:
        """Epochs between evaluations: ``eval_every``, scaled with the epochs a step cap or step share
        removed, so the run is evaluated about as often (``epochs / eval_every`` times) whatever the data size."""
        p, planned = self.params, self.planned_epochs
        return p.eval_every if planned == p.epochs else max(1, round(p.eval_every * planned / p.epochs))

    @contextmanager
    def tracking(self) -> Iterator[Tracker]:
        """The MLflow run of this stage (and, for CPU fast paths, glibc keeping freed memory)."""
        from lusynth.tracking import log_frame_store_input, optional_stage_run, run_name

        tags: dict[str, Any] = {**self.key.as_dict(), "frames_digest": self.store.digest}
        if self.mirror_info.get("restored"):
            tags["restored_from_mirror"] = self.mirror
        if self.resumed:
            tags["resumed_from_run"] = self.resumed_from_run
            tags["resumed_at_step"] = self.step
        params = {**self.params_dict, **self.key.as_dict(),
                  "device": self.device,
                  "precision_resolved": self.precision,
                  "n_train": len(self.train_u8), "image_size": self.cfg.image_size,
                  "planned_epochs": self.planned_epochs, "eval_every_epochs": self.eval_every}
        retain = retain_freed_memory() if (self.params.fast_cpu and self.device == "cpu") else nullcontext()
        with retain, optional_stage_run(self.ctx.track, stage="train_gan", local_dir=self.out_dir, run_name=run_name("train_gan", self.key),
                               params=params, tags=tags) as tr:
            log_frame_store_input(tr, self.store, "training")
            self.tracker = tr
            yield tr

    # --- training ---

    def run_epoch(self, epoch: int, advance: Advance) -> None:
        """Train one pass over the frames in the order seeded by (seed, ``epoch``); log each step's losses."""
        p, n, tr = self.params, len(self.train_u8), self._tracker()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(p.seed * 1_000_003 + epoch)).to(self.device)
        t0 = time.perf_counter()
        for i in range(0, n, p.batch_size):
            batch = perm[i : i + p.batch_size]
            if len(batch) < 2:  # BatchNorm cannot train on one frame
                continue
            real = _to_unit(self.frames_t[batch]).contiguous(memory_format=self.memory_format)
            loss_d, loss_g, out_real, out_fake = self.train_step(
                self.g, self.d, self.opt_g, self.opt_d, real, nz=self.cfg.nz, policy=self.policy,
                autocast=self.autocast, ema=self.ema,
            )
            self.step += 1
            values = {
                "loss_d": loss_d.item(), "loss_g": loss_g.item(),
                "d_real": torch.sigmoid(out_real.detach().float()).mean().item(),
                "d_fake": torch.sigmoid(out_fake.detach().float()).mean().item(),
            }
            if not (math.isfinite(values["loss_d"]) and math.isfinite(values["loss_g"])):
                kept = (f"the last good checkpoint {self.last_path} (after epoch {self.saved_epoch}) is kept" if self.saved_epoch > 0
                        else "no checkpoint was written yet")
                raise NonFiniteLossError(
                    f"train-gan {self.label} fraction {self.fraction}: non-finite loss at step {self.step} (epoch {epoch + 1}): "
                    f"loss_d={values['loss_d']}, loss_g={values['loss_g']}; {kept}. Lower lr_g/lr_d, "
                    "train in fp32 (precision: fp32), or add instance_noise/diffaugment, then re-run (--resume continues from the checkpoint)"
                )
            tr.log_metrics(values, step=self.step)
            self.images += real.shape[0]
            elapsed = self.train_seconds + time.perf_counter() - t0
            advance(1, img_s=self.images / max(elapsed, 1e-9), loss_d=values["loss_d"], loss_g=values["loss_g"])
        self.train_seconds += time.perf_counter() - t0
        self.epoch = epoch + 1

    def due_for_evaluation(self) -> bool:
        """Every :attr:`eval_every` epochs and after the last."""
        return self.epoch % self.eval_every == 0 or self.epoch == self.planned_epochs

    def evaluate(self) -> None:
        """Fidelity of the current generator (``g_eval``) on the fixed latents at (``step``, ``epoch``):
        a history entry, a sample grid and, once training has started, a checkpoint of the weights."""
        tr = self._tracker()
        fake = sample_frames(self.g_eval, self.z_eval, autocast=self.autocast)
        entry: dict[str, Any] = {"step": self.step, "epoch": self.epoch}
        entry.update(fidelity_report(
            fake, self.real_val, fake_embed=embed(self.emb, fake), real_embed=self.real_embed, train=self.train_u8,
            reference_dcr=self.reference_dcr, near_copy=self.near_copy, real_groups=self.val_clips,
        ))
        grid_path = self.out_dir / SAMPLES_DIR / f"step_{self.step:08d}.png"
        save_png(grid_path, make_grid(fake[:64]))
        if self.epoch >= 1:
            entry["checkpoint"] = f"{CHECKPOINT_DIR}/{step_file(self.step)}"
            save_checkpoint(self.out_dir / entry["checkpoint"], self._weights_state())
        self.history.append(entry)
        tr.log_metrics({k: v for k, v in entry.items() if isinstance(v, float)}, step=self.step)
        tr.log_artifact(grid_path, "samples")
        if self.epoch >= 1:
            self.prune_checkpoints()

    def choose(self) -> dict[str, Any]:
        """The selection rule's choice over the history so far (:func:`lusynth.gan.selection.choose`)."""
        return choose(self.history, rule=self.params.selection, max_memorisation_rate=self.params.max_memorisation_rate)

    def prune_checkpoints(self) -> None:
        """Without ``keep_checkpoints``, delete every evaluated checkpoint but the one :meth:`choose` picks now."""
        if self.params.keep_checkpoints:
            return
        keep = self.choose()["entry"]["checkpoint"]
        for h in self.history:
            if h.get("checkpoint") and h["checkpoint"] != keep:
                (self.out_dir / h["checkpoint"]).unlink(missing_ok=True)

    def _weights_state(self) -> dict[str, Any]:
        return {
            "config": config_dict(self.cfg), "step": self.step, "epoch": self.epoch,
            "generator": self.g.state_dict(), "discriminator": self.d.state_dict(),
            "generator_ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def checkpoint_due(self, evaluated: bool) -> bool:
        """Write the resumable state now? After an evaluation (every ``eval_every`` epochs and the last,
        :meth:`due_for_evaluation`), and otherwise once ``checkpoint_seconds`` have passed since the
        last write (0: every epoch)."""
        return evaluated or time.monotonic() - self.saved_at >= self.params.checkpoint_seconds

    def save_checkpoint(self) -> None:
        """``last.pt``: the weights plus everything ``--resume`` needs (optimisers, RNG states, history)."""
        self.saved_epoch, self.saved_at = self.epoch, time.monotonic()
        save_checkpoint(self.last_path, {
            **self._weights_state(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": get_rng_state(), "history": self.history, "params": self.params_dict, "precision": self.precision,
            "frames_digest": self.store.digest, "label": self.label, "fraction": float(self.fraction), "fold": self.key.fold,
            "run_id": self._tracker().run_id,
        })

    def push_to_mirror(self) -> None:
        """Copy the resumable state to the checkpoint mirror, if there is one."""
        if not self.mirror:
            return
        pushed = CheckpointMirror(self.mirror).push(self.out_dir)
        self.mirror_info.update(pushes=self.mirror_info["pushes"] + 1, last_push=pushed)
        self._tracker().log_metrics({"mirror_push_seconds": pushed["seconds"]}, step=self.step)

    # --- the artefact ---

    def finish(self) -> GanRun:
        """Choose the checkpoint, write ``chosen.json`` and the :class:`GanRun` (gan.json last), log them."""
        tr = self._tracker()
        chosen = self.choose()
        entry = chosen["entry"]
        atomic_write_json(self.out_dir / CHOSEN_FILE, {"checkpoint": entry["checkpoint"], "step": entry["step"], "epoch": entry["epoch"]})
        self.prune_checkpoints()  # without keep_checkpoints only the chosen one stays
        p = self.params
        ips = self.images / self.train_seconds if self.train_seconds > 0 else 0.0
        run = GanRun(
            path=self.out_dir, key=self.key, run_id=tr.run_id, frames_digest=self.store.digest,
            frames_dir=str(self.store.path), device=self.device, threads=self.threads,
            params=self.params_dict, config=config_dict(self.cfg),
            n_train=len(self.train_u8), n_val=int(len(self.idx["val"])), n_holdout=0,
            steps=self.step, epochs=self.planned_epochs,
            chosen={"checkpoint": entry["checkpoint"], "step": entry["step"], "epoch": entry["epoch"],
                    "metrics": {k: v for k, v in entry.items() if isinstance(v, float)}},
            selection={"rule": p.selection, "max_memorisation_rate": p.max_memorisation_rate,
                       "near_copy": as_dict(self.near_copy),
                       "eligible": chosen["eligible"], "reason": chosen["reason"], "candidates": chosen["candidates"],
                       "inputs": HISTORY_FILE},
            params_g=count_params(self.g), params_d=count_params(self.d), flops_per_image=family_flops(self.cfg),
            images_per_second=ips, resumed=self.resumed, mirror=self.mirror_info,
            history=self.history, train_seconds=self.train_seconds,
        )
        tr.log_metrics({"chosen_step": float(entry["step"]), "images_per_second": ips}, step=self.step)
        tr.log_artifact(self.out_dir / entry["checkpoint"], "chosen")
        tr.set_tags({"chosen_checkpoint": entry["checkpoint"]})
        summary_path = run.save(self.out_dir)
        tr.log_artifact(self.out_dir / HISTORY_FILE)
        tr.log_artifact(summary_path)
        return run

    def _tracker(self) -> Tracker:
        if self.tracker is None:
            raise RuntimeError("GanTrainer: training, evaluation and checkpoints run inside `with trainer.tracking():`")
        return self.tracker


def train_gan(
    frames_dir: str | Path,
    out_dir: str | Path,
    *,
    label: str,
    fraction: float,
    gan_seed: int = 0,
    fold: int = 0,
    generator: str = "dcgan",
    params: GanParams | None = None,
    near_copy: NearCopyPolicy | None = None,
    resume: bool = False,
    progress: bool = True,
    mirror: str | None = None,
    ctx: RunContext | None = None,
) -> GanRun:
    """Train one GAN of family ``generator`` on ``label``'s training frames at ``fraction``; write ``out_dir`` (see module doc).

    ``gan_seed`` (the grid's GAN seed; the generator trains with ``params.seed + gan_seed``),
    ``fold`` (the outer fold) and ``generator`` (``dcgan`` | ``fastgan``) complete its :class:`~lusynth.keys.GanKey`.

    ``resume=True`` continues from ``out_dir/checkpoints/last.pt`` (or starts fresh if there is
    none); otherwise any previous outputs in ``out_dir`` are replaced. ``mirror`` (an
    ``s3://`` prefix or a directory, :mod:`lusynth.gan.mirror`) receives the resumable state each
    time it is written (``params.checkpoint_seconds``), and a resumed run whose ``out_dir`` lacks ``last.pt`` (a new pod) restores it
    from there first.
    """
    trainer = GanTrainer(frames_dir, out_dir, label=label, fraction=fraction, gan_seed=gan_seed, fold=fold, generator=generator, params=params,
                         near_copy=near_copy, mirror=mirror, ctx=ctx)
    trainer.resume_or_start(resume=resume)
    epochs = trainer.planned_epochs
    with trainer.tracking():
        if not trainer.history:
            trainer.evaluate()  # the untrained generator: the baseline every later evaluation must beat
        with progress_bar(epochs * trainer.steps_per_epoch, f"train_gan[{trainer.key}]", enabled=progress,
                          unit="steps", completed=trainer.step) as advance:
            for epoch in range(trainer.epoch, epochs):
                trainer.run_epoch(epoch, advance)
                evaluated = trainer.due_for_evaluation()
                if evaluated:
                    trainer.evaluate()
                if trainer.checkpoint_due(evaluated):  # a kill loses at most checkpoint_seconds or one epoch of training
                    trainer.save_checkpoint()
                    trainer.push_to_mirror()
        run = trainer.finish()
    return run
