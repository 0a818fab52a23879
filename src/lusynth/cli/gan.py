"""``lusynth train-gan``, ``lusynth generate`` and ``lusynth export-png``: thin commands over
:mod:`lusynth.gan`; flags fill :class:`~lusynth.gan.params.GanParams` / ``GenerateParams``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lusynth.cli import app


@app.command("train-gan")
def train_gan_cmd(
    frames: Path = typer.Option(..., "--frames", "-f", help="Frame store from `lusynth ingest`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory of this GAN (checkpoints, history, gan.json)."),
    label: str = typer.Option(..., "--label", help="The class to learn (one GAN per class)."),
    fraction: float = typer.Option(1.0, "--fraction", help="Training fraction (nested, by patient)."),
    profile: str = typer.Option("demo", "--profile", help="Parameter profile: demo | paper."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.pt."),
    checkpoint_mirror: Optional[str] = typer.Option(
        None, "--checkpoint-mirror", envvar="LUSYNTH_GAN_CHECKPOINTS",
        help="s3://bucket/prefix or a directory: mirror the resumable state there every epoch and resume from it "
             "when OUT lacks it (implies --resume).",
    ),
    fast_cpu: Optional[bool] = typer.Option(None, "--fast-cpu/--stock-cpu", help="CPU training fast paths (default on)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (0 = the profile's)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr_g: Optional[float] = typer.Option(None, "--lr-g"),
    lr_d: Optional[float] = typer.Option(None, "--lr-d"),
    ngf: Optional[int] = typer.Option(None, "--ngf"),
    ndf: Optional[int] = typer.Option(None, "--ndf"),
    instance_noise: Optional[float] = typer.Option(None, "--instance-noise", help="Variance of noise on D's input (paper option 0.2); 0 = off."),
    diffaugment: Optional[str] = typer.Option(None, "--diffaugment", help="DiffAugment ops, e.g. translation,cutout; '' = off."),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", help="EMA of G's weights; 0 = off."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Epochs between fidelity evaluations."),
    selection: Optional[str] = typer.Option(None, "--selection", help="nn1_embed | nn1_pixels | last"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train one DCGAN (the paper's loop) on one class's training frames at one fraction."""
    from lusynth.gan.run import GanRun
    from lusynth.stages import train_gan_stage, zero_is_unset

    overrides = {
        **zero_is_unset(epochs=epochs), "batch_size": batch_size, "lr_g": lr_g, "lr_d": lr_d, "ngf": ngf, "ndf": ndf,
        "instance_noise": instance_noise, "diffaugment": diffaugment, "ema_decay": ema_decay,
        "eval_every": eval_every, "selection": selection, "seed": seed, "device": device, "fast_cpu": fast_cpu,
    }
    train_gan_stage(frames, out, label=label, fraction=fraction, profile=profile, overrides=overrides, resume=resume,
                    progress=not quiet, cache=False, mirror_root=checkpoint_mirror or None)
    if not quiet:
        r = GanRun.load(out)
        c, m = r.chosen, r.chosen["metrics"]
        typer.echo(
            f"{label} @ {fraction}: {r.steps} steps on {r.device}; chosen step {c['step']} (epoch {c['epoch']}): "
            f"nn1_embed {m['nn1_embed']:.3f}, mmd_embed {m['mmd_embed']:.4f}, nn1_pixels {m['nn1_pixels']:.3f}, "
            f"memorisation {m['memorisation_rate']:.3f}\nmlflow run {r.run_id}; outputs in {out}"
        )


@app.command("generate")
def generate_cmd(
    gan: list[Path] = typer.Option(..., "--gan", "-g", help="A train-gan output directory (repeat: one per class)."),
    frames: Path = typer.Option(..., "--frames", "-f", help="The frame store the GANs were trained on."),
    out: Path = typer.Option(..., "--out", "-o", help="Synthetic frame store to write (replaced atomically)."),
    profile: str = typer.Option("demo", "--profile", help="Parameter profile: demo | paper."),
    n_per_class: Optional[int] = typer.Option(None, "--n-per-class", "-n", help="Frames kept per class (0 = the profile's)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    which: Optional[str] = typer.Option(None, "--which", help="chosen | last | an evaluated step number"),
    percentile: Optional[float] = typer.Option(None, "--percentile", help="Near-copy threshold percentile of holdout DCR."),
    device: Optional[str] = typer.Option(None, "--device"),
    png: Optional[Path] = typer.Option(None, "--png", help="Also export the frames as PNG folders here."),
) -> None:
    """Synthetic frames per class from trained GANs, near-copies of training frames dropped."""
    import json

    from lusynth.gan.generate import export_png
    from lusynth.stages import generate_stage, zero_is_unset

    overrides = {**zero_is_unset(n_per_class=n_per_class), "seed": seed, "which": which, "percentile": percentile, "device": device}
    generate_stage(gan, frames, out, profile=profile, overrides=overrides, cache=False)
    for label, p in json.loads((out / "header.json").read_text())["privacy_filter"].items():
        typer.echo(f"{label}: kept {p['kept']} of {p['generated']} generated; dropped {p['dropped_near_copies']} near-copies "
                   f"(DCR < {p['threshold']:.3f}, {p['percentile']}th percentile of holdout)")
    typer.echo(f"synthetic frame store: {out}")
    if png is not None:
        typer.echo(f"{export_png(out, png)} PNGs in {png}")


@app.command("export-png")
def export_png_cmd(
    store: Path = typer.Option(..., "--store", "-s", help="A frame store (synthetic or real)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write <label>/<frame_id>.png into."),
) -> None:
    """Write a frame store's frames as PNG folders, one per class."""
    from lusynth.gan.generate import export_png

    typer.echo(f"{export_png(store, out)} PNGs in {out}")
