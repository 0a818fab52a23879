"""``train-gan``: one unconditional DCGAN for one class at one training fraction (as in the paper).

The loop is the paper's (BCE, non-saturating G loss, Adam(0.5, 0.999), separate lr for G and D,
D updated on a real and a fake batch, then G), plus switchable, measured improvements
(DiffAugment, an EMA copy of G) and the machinery a pipeline needs: resumable atomic checkpoints
with RNG state, non-finite loss detection, fidelity against held-out validation frames with an
automatic checkpoint choice, and MLflow tracking through :mod:`lusynth.tracking`.

Output directory (the contract other stages rely on)::

    gan.json               summary, written last: label, fraction, params, device, frames digest,
                           MLflow run id, chosen checkpoint + the selection rule and its inputs
    fidelity_history.json  one entry per evaluation: step, epoch, mmd_pixels, nn1_pixels,
                           mmd_embed, nn1_embed, memorisation_rate, ...
    chosen.json            the chosen checkpoint (a file under checkpoints/)
    checkpoints/           last.pt (full state for --resume) and step_*.pt (per evaluation)
    samples/               step_*.png sample grids (fixed latents)
    embedding.pt           the fidelity embedding net trained here (lusynth.models.embedding)
    mlruns.db, mlartifacts/  the local MLflow store when MLFLOW_TRACKING_URI is not set

Determinism: with the same frames, params and seed on the same machine (same thread count) the
weights are bit-identical, and a run killed at any point and resumed with ``resume=True`` ends
with the same weights as an uninterrupted one: ``last.pt`` is written at every epoch end with
all RNG states, and each epoch's shuffling comes from its own generator seeded by (seed, epoch).
"""

from __future__ import annotations

import io
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lusynth.atomic import atomic_write_bytes, atomic_write_json
from lusynth.data.framestore import FrameStore, open_store
from lusynth.errors import InputError, LusynthError
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
from lusynth.gan.diffaugment import diff_augment, parse_policy
from lusynth.gan.ema import EMA
from lusynth.gan.evaluation import balanced_real_subset, fidelity_report, make_grid, pixels
from lusynth.gan.mirror import CheckpointMirror
from lusynth.gan.params import GanParams
from lusynth.gan.selection import choose
from lusynth.metrics.nearcopy import NearCopyPolicy
from lusynth.metrics.privacy import distance_to_closest_record
from lusynth.models.dcgan import LAYERS_FOR_SIZE, DCGANConfig, count_params, discriminator, flops_per_image, generator
from lusynth.models.embedding import EmbeddingConfig, EmbeddingNet, embed, fit_embedding
from lusynth.params import as_dict
from lusynth.progress import progress as progress_bar
from lusynth.runtime import configure_threads, retain_freed_memory, select_device

__all__ = ["GanResult", "NonFiniteLossError", "build_networks", "sample_frames", "train_gan", "train_step"]

GAN_FILE = "gan.json"
HISTORY_FILE = "fidelity_history.json"
EMBEDDING_FILE = "embedding.pt"
SAMPLES_DIR = "samples"
_OUTPUTS = (CHECKPOINT_DIR, SAMPLES_DIR, EMBEDDING_FILE, CHOSEN_FILE, GAN_FILE, HISTORY_FILE)
# params that may change between a killed run and its resume without changing the result
_RESUME_FREE = ("keep_checkpoints",)


class NonFiniteLossError(LusynthError):
    """A loss became NaN/inf; the last good checkpoint is kept."""


@dataclass
class GanResult:
    """What :func:`train_gan` did; the same facts are in ``out_dir/gan.json``."""

    out_dir: Path
    label: str
    fraction: float
    run_id: str
    device: str
    chosen: dict[str, Any]
    history: list[dict[str, Any]] = field(repr=False)
    steps: int
    train_seconds: float
    images_per_second: float


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """BCE on logits (= the paper's sigmoid + BCELoss, numerically stable); float32 under autocast."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _to_unit(frames_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B,S,S) -> float (B,1,S,S) in [-1, 1] (the reference's ToTensor + Normalize(0.5, 0.5))."""
    return frames_u8.unsqueeze(1).float().div_(127.5).sub_(1.0)


def _to_u8(x: torch.Tensor) -> np.ndarray:
    """G output (B,1,S,S) in [-1, 1] -> uint8 (B,S,S), as the frame store holds it."""
    return ((x.float()[:, 0] + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def sample_frames(g: torch.nn.Module, z: torch.Tensor, *, batch_size: int = 64, autocast: Any = nullcontext) -> np.ndarray:
    """uint8 frames from G in eval mode for latents ``z`` (n, nz, 1, 1); restores G's mode."""
    was_training = g.training
    g.eval()
    out = []
    try:
        for i in range(0, len(z), batch_size):
            with autocast():
                out.append(_to_u8(g(z[i : i + batch_size])))
    finally:
        g.train(was_training)
    return np.concatenate(out)


def train_step(
    g: torch.nn.Module,
    d: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    *,
    nz: int,
    policy: tuple[str, ...] = (),
    autocast: Any = nullcontext,
    ema: EMA | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the paper's loop on a batch of real frames in [-1, 1]; returns
    (loss_d, loss_g, D logits on real, D logits on fake). Also used by ``benchmarks/bench_gan.py``."""
    b = real.shape[0]
    # (1) update D: maximise log D(x) + log(1 - D(G(z)))
    opt_d.zero_grad(set_to_none=True)
    with autocast():
        out_real = d(diff_augment(real, policy))
        loss_real = _bce(out_real, 1.0)
        z = torch.randn(b, nz, 1, 1, device=real.device)
        fake = g(z)
        out_fake = d(diff_augment(fake.detach(), policy))
        loss_fake = _bce(out_fake, 0.0)
    loss_d = loss_real + loss_fake
    loss_d.backward()
    opt_d.step()
    # (2) update G: maximise log D(G(z)) (non-saturating). D's weights are frozen here: their
    # gradients would be discarded anyway (the paper's loop computes them), skipping saves compute.
    d.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with autocast():
        loss_g = _bce(d(diff_augment(fake, policy)), 1.0)
    loss_g.backward()
    opt_g.step()
    d.requires_grad_(True)
    if ema is not None:
        ema.update(g)
    return loss_d.detach(), loss_g.detach(), out_real.detach(), out_fake.detach()


def build_networks(
    cfg: DCGANConfig, params: GanParams, device: str
) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer, torch.optim.Optimizer, torch.memory_format]:
    """G, D (DCGAN-initialised from the global torch RNG) and their Adam optimisers, in the memory
    layout and with the kernels training uses; also used by ``benchmarks/bench_gan.py``.

    Fused Adam (one kernel over all parameters) on CUDA, and on the CPU with ``fast_cpu``; with
    ``fast_cpu`` the layers are :mod:`lusynth.models.fastcpu`'s (``cfg.fast_cpu``)."""
    memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
    g = generator(cfg).to(device).to(memory_format=memory_format)
    d = discriminator(cfg).to(device).to(memory_format=memory_format)
    fused = True if (params.fast_cpu or device.startswith("cuda")) else None
    opt_g = torch.optim.Adam(g.parameters(), lr=params.lr_g, betas=(params.beta1, params.beta2), fused=fused)
    opt_d = torch.optim.Adam(d.parameters(), lr=params.lr_d, betas=(params.beta1, params.beta2), fused=fused)
    return g, d, opt_g, opt_d, memory_format


def _select_frames(store: FrameStore, label: str, fraction: float) -> dict[str, np.ndarray]:
    if label not in store.classes:
        raise InputError(f"--label {label!r}: {store.path} has classes {store.classes}")
    idx = {
        "train": store.indices(split="train", label=label, fraction=fraction),
        "val": store.indices(split="val", label=label),
        "holdout": store.indices(split="holdout", label=label),
    }
    if len(idx["train"]) < 2:
        raise InputError(
            f"{store.path}: only {len(idx['train'])} training frames of class {label!r} at fraction {fraction}; "
            "check --fraction against the store's training fractions"
        )
    if len(idx["val"]) < 2 or len(idx["holdout"]) < 1:
        raise InputError(
            f"{store.path}: class {label!r} has {len(idx['val'])} validation and {len(idx['holdout'])} holdout frames; "
            "fidelity needs >= 2 validation and the memorisation check >= 1 holdout frame; re-ingest with more patients"
        )
    return idx


def _clear_outputs(out_dir: Path) -> None:
    for name in _OUTPUTS:
        p = out_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _embedding_net(store: FrameStore, fraction: float, params: GanParams, out_dir: Path, reuse: bool) -> EmbeddingNet:
    """Train (or, on resume, reload) the fidelity embedding on all classes' training frames."""
    path = out_dir / EMBEDDING_FILE
    if reuse and path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        cfg = EmbeddingConfig(**{k: tuple(v) if k == "widths" else v for k, v in state["config"].items()})
        net = EmbeddingNet(cfg)
        net.load_state_dict(state["weights"])
        return net.eval()
    idx = store.indices(split="train", fraction=fraction)
    labels = np.searchsorted(np.array(sorted(store.classes)), store.manifest["label"].to_numpy()[idx])
    cfg = EmbeddingConfig(n_classes=len(store.classes), epochs=params.embedding_epochs)
    net = fit_embedding(np.asarray(store.frames[idx]), labels, cfg=cfg, seed=params.seed)
    save_checkpoint(path, {"config": {**as_dict(cfg)}, "weights": net.state_dict()})
    return net


def train_gan(
    frames_dir: str | Path,
    out_dir: str | Path,
    *,
    label: str,
    fraction: float,
    params: GanParams | None = None,
    near_copy: NearCopyPolicy | None = None,
    resume: bool = False,
    progress: bool = True,
    mirror: str | None = None,
) -> GanResult:
    """Train one DCGAN on ``label``'s training frames at ``fraction``; write ``out_dir`` (see module doc).

    ``resume=True`` continues from ``out_dir/checkpoints/last.pt`` (or starts fresh if there is
    none); otherwise any previous outputs in ``out_dir`` are replaced. ``mirror`` (an
    ``s3://`` prefix or a directory, :mod:`lusynth.gan.mirror`) receives the resumable state after
    every epoch, and a resumed run whose ``out_dir`` lacks ``last.pt`` (a new pod) restores it
    from there first.
    """
    params = params or GanParams()
    near_copy = near_copy or NearCopyPolicy()  # what counts as a near-copy in checkpoint selection
    threads = configure_threads()
    device = select_device(params.device)
    cuda = device.startswith("cuda")
    out_dir = Path(out_dir)
    store = open_store(frames_dir)
    if store.image_size not in LAYERS_FOR_SIZE:
        raise InputError(f"{store.path}: image size {store.image_size}; the DCGAN family supports {sorted(LAYERS_FOR_SIZE)} (re-ingest with --image-size)")
    idx = _select_frames(store, label, fraction)
    cfg = DCGANConfig(
        image_size=store.image_size, nz=params.nz, ngf=params.ngf, ndf=params.ndf,
        dropout=params.dropout, instance_noise=params.instance_noise, fast_cpu=params.fast_cpu,
    )
    params_dict = as_dict(params)
    last_path = out_dir / CHECKPOINT_DIR / LAST_FILE
    mirror_info: dict[str, Any] = {"uri": mirror, "restored": False, "pushes": 0} if mirror else {}
    if resume and mirror and not last_path.is_file():
        mirror_info["restored"] = CheckpointMirror(mirror).pull(out_dir)
    resume_state = load_checkpoint(last_path) if resume and last_path.is_file() else None
    if resume_state is not None:
        _check_resumable(resume_state, store, label, fraction, params_dict, last_path)
    else:
        _clear_outputs(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
    (out_dir / SAMPLES_DIR).mkdir(exist_ok=True)

    if cuda:
        # reproducible kernels; the speed cost at DCGAN sizes is small
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if (cuda and params.amp) else nullcontext

    # --- data: uint8 on the device, converted per batch ---
    train_u8 = np.asarray(store.frames[idx["train"]])
    frames_t = torch.from_numpy(train_u8).to(device)
    val_all = np.asarray(store.frames[idx["val"]])
    n_fake = min(params.n_eval, len(val_all))
    val_subset = balanced_real_subset(len(val_all), n_fake, seed=params.seed)
    real_val = val_all[val_subset]
    # each validation frame's clip: the real side of the 1-NN test leaves a whole clip out
    val_clips = store.manifest["video_id"].to_numpy()[idx["val"]][val_subset]
    val_clips = val_clips if len(set(val_clips)) > 1 else None
    holdout_dcr = distance_to_closest_record(pixels(np.asarray(store.frames[idx["holdout"]])), pixels(train_u8))
    emb = _embedding_net(store, fraction, params, out_dir, reuse=resume_state is not None)
    real_embed = embed(emb, real_val)
    # fixed evaluation latents from their own generator: evaluations never touch the training RNG
    z_eval = torch.randn(n_fake, cfg.nz, 1, 1, generator=torch.Generator().manual_seed(params.seed + 7919)).to(device)

    # --- models ---
    torch.manual_seed(params.seed)
    g, d, opt_g, opt_d, memory_format = build_networks(cfg, params, device)
    ema = EMA(g, params.ema_decay) if params.ema_decay > 0 else None
    policy = parse_policy(params.diffaugment)
    step, start_epoch, history = 0, 0, []
    if resume_state is not None:
        g.load_state_dict(resume_state["generator"])
        d.load_state_dict(resume_state["discriminator"])
        opt_g.load_state_dict(resume_state["opt_g"])
        opt_d.load_state_dict(resume_state["opt_d"])
        if ema is not None:
            ema.load_state_dict(resume_state["generator_ema"])
        set_rng_state(resume_state["rng"])
        step, start_epoch = int(resume_state["step"]), int(resume_state["epoch"])
        history = [dict(h) for h in resume_state["history"]]
    g_eval = ema.shadow if ema is not None else g  # the generator that is evaluated and shipped

    n = len(train_u8)
    steps_per_epoch = sum(1 for i in range(0, n, params.batch_size) if n - i >= 2)
    flops = flops_per_image(cfg)
    tags = {"label": label, "fraction": fraction, "frames_digest": store.digest}
    if mirror_info.get("restored"):
        tags["restored_from_mirror"] = mirror
    if resume_state is not None:
        tags["resumed_from_run"] = resume_state.get("run_id", "")
        tags["resumed_at_step"] = step
    from lusynth.tracking import stage_run

    def weights_state() -> dict[str, Any]:
        return {
            "config": as_dict(cfg), "step": step, "epoch": epoch_done,
            "generator": g.state_dict(), "discriminator": d.state_dict(),
            "generator_ema": ema.state_dict() if ema is not None else None,
        }

    def evaluate() -> None:
        fake = sample_frames(g_eval, z_eval, autocast=autocast)
        entry: dict[str, Any] = {"step": step, "epoch": epoch_done}
        entry.update(fidelity_report(
            fake, real_val, fake_embed=embed(emb, fake), real_embed=real_embed, train=train_u8,
            holdout_dcr=holdout_dcr, near_copy=near_copy, real_groups=val_clips,
        ))
        grid_path = out_dir / SAMPLES_DIR / f"step_{step:08d}.png"
        _save_png(grid_path, make_grid(fake[:64]))
        if epoch_done >= 1:
            entry["checkpoint"] = f"{CHECKPOINT_DIR}/{step_file(step)}"
            save_checkpoint(out_dir / entry["checkpoint"], weights_state())
        history.append(entry)
        tr.log_metrics({k: v for k, v in entry.items() if isinstance(v, float)}, step=step)
        tr.log_artifact(grid_path, "samples")
        if not params.keep_checkpoints and epoch_done >= 1:
            keep = choose(history, rule=params.selection, max_memorisation_rate=params.max_memorisation_rate)["entry"]["checkpoint"]
            for h in history:
                if h.get("checkpoint") and h["checkpoint"] != keep:
                    (out_dir / h["checkpoint"]).unlink(missing_ok=True)

    retain = retain_freed_memory() if (params.fast_cpu and device == "cpu") else nullcontext()
    with retain, stage_run("train_gan", local_dir=out_dir, run_name=f"train_gan-{label}-{fraction}",
                   params={**params_dict, "label": label, "fraction": fraction, "device": device,
                           "n_train": n, "image_size": cfg.image_size}, tags=tags) as tr:
        epoch_done = start_epoch
        if not history:
            evaluate()  # the untrained generator: the baseline every later evaluation must beat
        images, t_train = 0, 0.0
        with progress_bar(params.epochs * steps_per_epoch, f"train_gan[{label}@{fraction:g}]", enabled=progress,
                          unit="steps", completed=step) as advance:
            for epoch in range(start_epoch, params.epochs):
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(params.seed * 1_000_003 + epoch)).to(device)
                t0 = time.perf_counter()
                for i in range(0, n, params.batch_size):
                    batch = perm[i : i + params.batch_size]
                    if len(batch) < 2:  # BatchNorm cannot train on one frame
                        continue
                    real = _to_unit(frames_t[batch]).contiguous(memory_format=memory_format)
                    b = real.shape[0]
                    loss_d, loss_g, out_real, out_fake = train_step(
                        g, d, opt_g, opt_d, real, nz=cfg.nz, policy=policy, autocast=autocast, ema=ema
                    )
                    step += 1
                    values = {
                        "loss_d": loss_d.item(), "loss_g": loss_g.item(),
                        "d_real": torch.sigmoid(out_real.detach().float()).mean().item(),
                        "d_fake": torch.sigmoid(out_fake.detach().float()).mean().item(),
                    }
                    if not (math.isfinite(values["loss_d"]) and math.isfinite(values["loss_g"])):
                        kept = (f"the last good checkpoint {last_path} (after epoch {epoch}) is kept" if epoch > 0
                                else "no checkpoint was written yet")
                        raise NonFiniteLossError(
                            f"train-gan {label} fraction {fraction}: non-finite loss at step {step} (epoch {epoch + 1}): "
                            f"loss_d={values['loss_d']}, loss_g={values['loss_g']}; {kept}. Lower lr_g/lr_d, "
                            "turn off amp, or add instance_noise/diffaugment, then re-run (--resume continues from the checkpoint)"
                        )
                    tr.log_metrics(values, step=step)
                    images += b
                    elapsed = t_train + time.perf_counter() - t0
                    advance(1, img_s=images / max(elapsed, 1e-9), loss_d=values["loss_d"], loss_g=values["loss_g"])
                t_train += time.perf_counter() - t0
                epoch_done = epoch + 1
                if epoch_done % params.eval_every == 0 or epoch_done == params.epochs:
                    evaluate()
                save_checkpoint(last_path, {
                    **weights_state(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                    "rng": get_rng_state(), "history": history, "params": params_dict,
                    "frames_digest": store.digest, "label": label, "fraction": float(fraction), "run_id": tr.run_id,
                })
                if mirror:
                    pushed = CheckpointMirror(mirror).push(out_dir)
                    mirror_info.update(pushes=mirror_info["pushes"] + 1, last_push=pushed)
                    tr.log_metrics({"mirror_push_seconds": pushed["seconds"]}, step=step)

        chosen = choose(history, rule=params.selection, max_memorisation_rate=params.max_memorisation_rate)
        entry = chosen["entry"]
        atomic_write_json(out_dir / HISTORY_FILE, history)
        atomic_write_json(out_dir / CHOSEN_FILE, {"checkpoint": entry["checkpoint"], "step": entry["step"], "epoch": entry["epoch"]})
        for h in history:  # without keep_checkpoints only the chosen one stays
            if not params.keep_checkpoints and h.get("checkpoint") and h["checkpoint"] != entry["checkpoint"]:
                (out_dir / h["checkpoint"]).unlink(missing_ok=True)
        ips = images / t_train if t_train > 0 else 0.0
        summary = {
            "label": label, "fraction": float(fraction), "params": params_dict, "config": as_dict(cfg),
            "device": device, "threads": threads, "frames_dir": str(store.path), "frames_digest": store.digest,
            "mlflow_run_id": tr.run_id, "run_id": tr.run_id, "n_train": n, "n_val": int(len(idx["val"])), "n_holdout": int(len(idx["holdout"])),
            "steps": step, "epochs": params.epochs,
            "chosen": {"checkpoint": entry["checkpoint"], "step": entry["step"], "epoch": entry["epoch"],
                       "metrics": {k: v for k, v in entry.items() if isinstance(v, float)}},
            "selection": {"rule": params.selection, "max_memorisation_rate": params.max_memorisation_rate,
                          "near_copy": as_dict(near_copy),
                          "eligible": chosen["eligible"], "reason": chosen["reason"], "candidates": chosen["candidates"],
                          "inputs": HISTORY_FILE},
            "params_g": count_params(g), "params_d": count_params(d), "flops_per_image": flops,
            "images_per_second_this_session": ips, "resumed": resume_state is not None,
        }
        if mirror_info:
            summary["mirror"] = mirror_info
        tr.log_metrics({"chosen_step": float(entry["step"]), "images_per_second": ips}, step=step)
        tr.log_artifact(out_dir / HISTORY_FILE)
        tr.log_artifact(out_dir / entry["checkpoint"], "chosen")
        tr.set_tags({"chosen_checkpoint": entry["checkpoint"]})
        summary_path = out_dir / GAN_FILE
        atomic_write_json(summary_path, summary)  # last: its presence means the directory is complete
        tr.log_artifact(summary_path)
    return GanResult(out_dir=out_dir, label=label, fraction=float(fraction), run_id=summary["mlflow_run_id"],
                     device=device, chosen=summary["chosen"], history=history, steps=step,
                     train_seconds=t_train, images_per_second=ips)


def _check_resumable(state: dict[str, Any], store: FrameStore, label: str, fraction: float,
                     params_dict: dict[str, Any], path: Path) -> None:
    """A checkpoint may only be continued with the same data, class, fraction and parameters."""
    problems = []
    if state.get("frames_digest") != store.digest:
        problems.append(f"frames digest {state.get('frames_digest')} != {store.digest}")
    if state.get("label") != label or abs(float(state.get("fraction", -1)) - fraction) > 1e-9:
        problems.append(f"class/fraction {state.get('label')}/{state.get('fraction')} != {label}/{fraction}")
    old = dict(state.get("params", {}))
    diff = sorted(k for k in set(old) | set(params_dict) if k not in _RESUME_FREE and old.get(k) != params_dict.get(k))
    if diff:
        problems.append("params differ: " + ", ".join(f"{k}={old.get(k)!r}->{params_dict.get(k)!r}" for k in diff))
    if problems:
        raise InputError(f"{path}: cannot resume ({'; '.join(problems)}); re-run without --resume to start over")


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
