"""Which generator family for small data on 2 CPU cores? The demo DCGAN vs FastGAN-lite at the same CPU budget.

For each frame store (the demo phantom, the POCUS clips), outer fold 0, the positive class at the
largest training fraction, and each seed, it trains

* ``dcgan``: the demo profile's DCGAN (``lusynth.gan.step.build_networks`` / ``train_step`` with the
  demo :class:`~lusynth.gan.params.GanParams`: DiffAugment ``translation,cutout``, EMA 0.99,
  precision ``auto``, fast CPU kernels), and
* ``fastgan``: FastGAN-lite (:mod:`lusynth.models.fastgan`, built as the GAN stage builds it from
  :class:`GanParams`: ``fastgan_width``, ``fastgan_recon_weight``, Adam(``fastgan_lr``, 0.5, 0.999);
  the same DiffAugment, EMA, batch size and precision as the DCGAN; ``fastgan-w4-b8``: widths
  ngf = ndf = 4 and batch size 8, the official FastGAN batch. ``generators.json`` was measured when
  FastGAN used the DCGAN's lr 2e-4; ``generators_tuning.json`` chose ``fastgan_lr`` 1e-3),

each for the same budget of **process CPU seconds** of training steps (``time.process_time()``
around each step, one thread), so other load on the machine does not bias the comparison.
``--budget auto`` measures the budget: the seed-0 DCGAN trains exactly the demo profile's
schedule (``epochs`` x batches per epoch, capped by ``max_steps``) and its CPU seconds become
the budget of every other run on that store. Data order is the trainer's (one permutation per
epoch from (seed, epoch)).

Both generators are scored as ``train-gan`` scores the DCGAN (:func:`lusynth.gan.evaluation.fidelity_report`):
the EMA generator's frames from fixed latents against a class-balanced subset of the fold's inner
validation patients, in the fidelity embedding trained on the fold's training frames (one
embedding per store and seed, shared by both families) and in pixels; 1-NN accuracy
leave-one-clip-out (``nn1_embed``, the trainer's selection metric) and leave-one-patient-out
(``nn1_embed_patient``), MMD^2, and the frames' fine detail relative to the real validation frames'
(``sharpness_ratio``: on few patients the distribution measures reward blur). Evaluated at 0 and
``--evals`` evenly spaced points of the budget; the reported checkpoint is the trainer's choice (:func:`lusynth.gan.selection.choose`,
rule ``nn1_embed``) on the validation patients. Because that choice looks at the validation
scores, the chosen checkpoint is also scored against the fold's **test** patients of the class
(never used for the choice; leave-one-patient-out): ``test_*``.

With two or three held-out patients, leave-one-patient-out 1-NN is degenerate (a real frame's
only "other" patients are one or two, so an untrained G can score 0.5), so the same test is also
run against a subset of the class's **training** patients (6-7 of them, as many frames as fakes):
``train_nn1_embed_patient``. The pseudo-family ``real-train`` (no training) scores other frames of
the training patients as if a generator had drawn them: each measure's reading for a generator
that fits its training patients exactly, which calibrates them (the 0.5 of the textbook 1-NN test
assumes exchangeable samples, and leave-one-patient-out on one side only breaks that). The summary
gives each family's paired difference from the DCGAN over seeds with a 95 % t interval. The
pseudo-family ``real-unseen`` scores the test patients' frames against the validation patients on
the validation-side 1-NN tests: what new real patients score there. The pseudo-families
``real-train-blurS`` (the ``real-train`` frames blurred, Gaussian sigma S pixels) and
``real-train-mixK`` (each the pixel mean of K frames of K different training patients) are known
answers: frames no reader would call more realistic than ``real-train``'s, so a measure that scores
them better rewards averaging, and a generator's gain on it is not evidence of realism.

Writes ``benchmarks/results/generators.json`` (after every run). Not a test::

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/bench_generators.py --seeds 0 1

Without ``--store`` it ingests the demo phantom and ``../shared/data/pocus`` itself.
``--variant 'NAME=FAMILY key=value ...'`` names a family with :class:`GanParams` overrides (e.g.
``'fg-lr5=fastgan lr_g=5e-4 lr_d=5e-4'``; listed in ``--families`` by NAME; the overrides are recorded
under ``variants`` in the JSON): the FastGAN tuning study (``results/generators_tuning.json``).
``--merge A.json B.json ... --out C.json`` joins runs made in separate processes (e.g. one per seed).
The pseudo-family ``phantom-oracle`` (phantom stores the bench ingests itself: the default one or
``--phantom-patients N``) is a *perfect* generator's known answer: one frame from each of many new
phantom patients, ingested as the store was, that no stage has seen; the summary gives every
family's paired distance from it (``_minus_oracle``) as from the DCGAN (results README, "A perfect
generator as the known answer").
``--families`` may add ``diffusion`` (``diffusion-w16-s25``: UNet base width 16, 25 DDIM steps) where
``diffusers`` is installed (it is not a project dependency; see the results README).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import importlib
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats
import torch

from bench_precision_quality import _default_stores, _write  # the same stores, the same partial-results writer
from lusynth.data.framestore import FrameStore, open_store
from lusynth.data.ingest import ingest
from lusynth.data.phantom import PhantomParams
from lusynth.gan.diffaugment import parse_policy
from lusynth.gan.ema import EMA
from lusynth.gan.evaluation import balanced_real_subset, fidelity_report
from lusynth.gan.outputs import embedding_net
from lusynth.gan.params import GanParams
from lusynth.gan.selection import choose
from lusynth.gan.step import _to_unit, sample_frames
from lusynth.metrics.fidelity import mmd2_rbf, one_nn_accuracy_parts, reference_gamma
from lusynth.metrics.nearcopy import NearCopyPolicy
from lusynth.models.embedding import EmbeddingNet, embed
from lusynth.runtime import autocast_for, resolve_precision

HERE = Path(__file__).resolve().parent
FOLD = 0
REPORTED = ("nn1_embed", "nn1_embed_real", "nn1_embed_fake", "nn1_embed_patient", "nn1_embed_patient_real", "nn1_embed_patient_fake",
            "mmd_embed", "mmd_embed_ref", "nn1_pixels", "mmd_pixels", "memorisation_rate",
            "test_nn1_embed_patient", "test_nn1_embed_patient_real", "test_nn1_embed_patient_fake", "test_mmd_embed_ref",
            "train_nn1_embed_patient", "train_nn1_embed_patient_real", "train_nn1_embed_patient_fake", "sharpness_ratio")
# the paired differences from the DCGAN that the summary gives, with a t interval over seeds
PAIRED = ("nn1_embed", "nn1_embed_patient", "mmd_embed_ref", "train_nn1_embed_patient", "test_nn1_embed_patient", "test_mmd_embed_ref",
          "sharpness_ratio")


@dataclass
class Evaluator:
    """The fixed inputs of one (store, seed): frames, validation/test references and the embedding."""

    train_u8: np.ndarray
    real_val: np.ndarray
    val_clips: np.ndarray | None
    val_patients: np.ndarray | None
    real_test: np.ndarray
    test_patients: np.ndarray | None
    train_embed: np.ndarray  # a subset of the class's training frames, as many as the fakes, in the embedding
    train_patients: np.ndarray | None
    reference_dcr: np.ndarray
    emb: EmbeddingNet
    real_embed: np.ndarray
    test_embed: np.ndarray
    n_eval: int
    real_floor: np.ndarray  # other frames of the training patients, as many as the fakes: the `real-train` pseudo-family
    real_floor_patients: np.ndarray  # their patients (the `real-train-mixK` pseudo-families average across patients)
    gamma_val: float  # RBF bandwidth of the MMD^2 on the validation side, from real embeddings alone
    gamma_test: float

    def score(self, fake: np.ndarray) -> dict[str, float]:
        """The trainer's fidelity report, plus leave-one-patient-out 1-NN (against the validation, the
        test and the training patients) and the test-patient MMD^2."""
        fe = embed(self.emb, fake)
        out = fidelity_report(fake, self.real_val, fake_embed=fe, real_embed=self.real_embed, train=self.train_u8,
                              reference_dcr=self.reference_dcr, near_copy=NearCopyPolicy(), real_groups=self.val_clips)
        # MMD^2 with one bandwidth fixed from the real embeddings: comparable across checkpoints and families
        out["mmd_embed_ref"] = float(mmd2_rbf(self.real_embed, fe, gamma=self.gamma_val))
        ft = fe[: len(self.test_embed)]
        sides = (("", self.real_embed, fe, self.val_patients), ("test_", self.test_embed, ft, self.test_patients),
                 ("train_", self.train_embed, fe[: len(self.train_embed)], self.train_patients))
        for prefix, real_side, fake_side, groups in sides:
            parts = one_nn_accuracy_parts(real_side, fake_side, real_groups=groups) if groups is not None else {}
            out[f"{prefix}nn1_embed_patient"] = parts.get("accuracy", float("nan"))
            out[f"{prefix}nn1_embed_patient_real"] = parts.get("real_accuracy", float("nan"))
            out[f"{prefix}nn1_embed_patient_fake"] = parts.get("fake_accuracy", float("nan"))
        out["test_mmd_embed_ref"] = float(mmd2_rbf(self.test_embed, ft, gamma=self.gamma_test))
        return out


def _groups(values: np.ndarray) -> np.ndarray | None:
    """Group labels for a leave-one-group-out 1-NN test, or None when there is only one group."""
    return values if len(set(values.tolist())) > 1 else None


def make_evaluator(store: FrameStore, label: str, params: GanParams, work: Path) -> Evaluator:
    """As ``GanTrainer._load_data``: the class's training frames, a balanced validation subset and
    its clips, the near-copy reference, and the embedding trained on the fold's training frames."""
    man = store.manifest
    tr, va, te = (store.view(FOLD, role, label=label) for role in ("train", "val", "test"))
    train_u8 = np.asarray(store.frames[tr])
    val_all = np.asarray(store.frames[va])
    n_fake = min(params.n_eval, len(val_all))
    sub = balanced_real_subset(len(val_all), n_fake, seed=params.seed)
    test_all = np.asarray(store.frames[te])
    tsub = balanced_real_subset(len(test_all), min(n_fake, len(test_all)), seed=params.seed)
    work.mkdir(parents=True, exist_ok=True)
    emb = embedding_net(store, store.view(FOLD, "train"), params, work, reuse=False)
    real_val = val_all[sub]
    real_embed, test_embed = embed(emb, real_val), embed(emb, test_all[tsub])
    # Leave-one-patient-out against 2-3 held-out patients is degenerate (a real frame's only other
    # patients are one or two; an untrained G scores 0.5 on POCUS), so the same test is also run
    # against the patients G was trained on, where 6-7 patients give the leave-out room to work.
    # A memorising G scores *below* 0.5 there (its fakes sit on their sources): read ``_fake`` and
    # the memorisation rate beside it.
    trsub = balanced_real_subset(len(train_u8), n_fake, seed=params.seed)
    rest = np.setdiff1d(np.arange(len(train_u8)), trsub)
    floor = rest[balanced_real_subset(len(rest), n_fake, seed=params.seed)]
    return Evaluator(
        train_u8=train_u8, real_val=real_val,
        val_clips=_groups(man["video_id"].to_numpy()[va][sub]), val_patients=_groups(man["patient_id"].to_numpy()[va][sub]),
        real_test=test_all[tsub], test_patients=_groups(man["patient_id"].to_numpy()[te][tsub]),
        train_embed=embed(emb, train_u8[trsub]), train_patients=_groups(man["patient_id"].to_numpy()[tr][trsub]),
        real_floor=train_u8[floor], real_floor_patients=man["patient_id"].to_numpy()[tr][floor],
        reference_dcr=NearCopyPolicy().reference_dcr(train_u8, val_all, man["patient_id"].to_numpy()[tr]),  # what train_gan uses
        emb=emb, real_embed=real_embed, test_embed=test_embed, n_eval=n_fake,
        gamma_val=reference_gamma(real_embed), gamma_test=reference_gamma(test_embed),
    )


def _variant(family: str) -> dict[str, int]:
    """``"fastgan-w4-b8"`` -> {"w": 4, "b": 8}: width ngf = ndf and batch size of a FastGAN variant."""
    return {part[0]: int(part[1:]) for part in family.split("-")[1:]}


def _networks(family: str, params: GanParams, image_size: int) -> tuple[Any, Any, Any, Any, torch.memory_format, Callable[..., Any]]:
    """G, D, optimisers, memory format and the step function of one family, initialised from the torch seed."""
    if family == "dcgan":
        from lusynth.gan.families import build_networks as family_networks
        from lusynth.gan.families import network_config
        from lusynth.gan.step import train_step

        g, d, og, od, mf = family_networks(network_config(params, image_size, "dcgan"), params, "cpu")  # the GAN stage's construction
        return g, d, og, od, mf, train_step
    if family.startswith("fastgan"):
        from lusynth.gan.families import build_networks as family_networks
        from lusynth.gan.families import network_config
        from lusynth.models import fastgan

        width = _variant(family).get("w", params.fastgan_width)
        fcfg = network_config(params, image_size, "fastgan")
        assert isinstance(fcfg, fastgan.FastGANConfig)
        # the GAN stage's own construction (Adam at gan.fastgan_lr), with a -wN name's width
        g, d, og, od, mf = family_networks(dataclasses.replace(fcfg, ngf=width, ndf=width), params, "cpu")
        return g, d, og, od, mf, fastgan.train_step
    if family.startswith("diffusion"):
        return _diffusion(params, image_size, _variant(family))
    raise SystemExit(f"--families: unknown family {family!r} (dcgan | fastgan[-wN][-bN] | diffusion[-wN][-sN] | real-train | "
                     "real-train-blurS | real-train-mixK | real-unseen)")


def _diffusion(params: GanParams, image_size: int, variant: dict[str, int]) -> tuple[Any, Any, Any, Any, torch.memory_format, Callable[..., Any]]:
    """A small DDPM-trained UNet (diffusers ``UNet2DModel``, built from a config, nothing downloaded),
    in the GAN interface: ``g`` is the UNet, ``d``/``opt_d`` are None, the step is one epsilon-prediction
    MSE step at a uniformly drawn timestep of a 1000-step linear schedule (no DiffAugment: no
    discriminator to protect), and :func:`_diffusion_sampler` draws frames with DDIM."""
    # imported as Any: diffusers is optional (not a project dependency) and its config metaclass hides attributes from mypy
    diffusers: Any = importlib.import_module("diffusers")
    w = variant.get("w", 16)  # base width: channels w, 2w, 4w at S, S/2, S/4 (and 4w at S/8)
    unet = diffusers.UNet2DModel(
        sample_size=image_size, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(w, 2 * w, 4 * w, 4 * w), norm_num_groups=min(8, w),
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
    )
    opt = torch.optim.Adam(unet.parameters(), lr=1e-3)  # higher than DDPM's 2e-4: a budget of minutes, not days
    train_sched = diffusers.DDPMScheduler(num_train_timesteps=1000)
    unet.sampling_steps = variant.get("s", 25)  # DDIM steps at evaluation

    def step(g: Any, d: Any, opt_g: Any, opt_d: Any, real: torch.Tensor, *, nz: int, policy: tuple[str, ...], autocast: Any,
             ema: EMA | None) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        noise = torch.randn_like(real)
        t = torch.randint(0, train_sched.config.num_train_timesteps, (real.shape[0],))
        noisy = train_sched.add_noise(real, noise, t)
        opt_g.zero_grad(set_to_none=True)
        with autocast():
            pred = g(noisy, t).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        loss.backward()
        opt_g.step()
        if ema is not None:
            ema.update(g)
        return loss.detach(), loss.detach(), None, None

    return unet, None, opt, None, torch.contiguous_format, step


@torch.no_grad()
def _diffusion_sampler(unet: Any, n: int, seed: int, autocast: Any) -> np.ndarray:
    """uint8 frames from DDIM (eta 0, ``unet.sampling_steps`` steps) started from seeded noise."""
    sched: Any = importlib.import_module("diffusers").DDIMScheduler(num_train_timesteps=1000)
    sched.set_timesteps(unet.sampling_steps)
    size = unet.config.sample_size
    x = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed))
    unet.eval()
    for t in sched.timesteps:
        with autocast():
            eps = unet(x, t).sample.float()
        x = sched.step(eps, t, x).prev_sample
    return ((x[:, 0].clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).numpy()


def train_budgeted(family: str, ev: Evaluator, params: GanParams, image_size: int, *, budget: float | None, evals: int,
                   planned_steps: int, eval_every_steps: int) -> dict[str, Any]:
    """Train one generator for ``budget`` CPU seconds of steps (None: ``planned_steps`` steps, evaluated
    every ``eval_every_steps``, the demo trainer's schedule); evaluate on the way; choose a checkpoint.
    ``family`` is a base family name (``dcgan``, ``fastgan[-wN][-bN]``, ``diffusion[-wN][-sN]``); a
    ``--variant``'s GanParams overrides are already in ``params``."""
    if "b" in _variant(family):
        params = dataclasses.replace(params, batch_size=_variant(family)["b"])
    torch.manual_seed(params.seed)
    g, d, opt_g, opt_d, mf, step_fn = _networks(family, params, image_size)
    ema = EMA(g, params.ema_decay)
    policy = parse_policy(params.diffaugment)
    autocast = autocast_for("cpu", resolve_precision(params.precision, "cpu"))
    z_eval = torch.randn(ev.n_eval, params.nz, 1, 1, generator=torch.Generator().manual_seed(params.seed + 7919))
    frames_t = torch.from_numpy(ev.train_u8)
    n, bs = len(ev.train_u8), params.batch_size
    per_epoch = sum(1 for i in range(0, n, bs) if n - i >= 2)
    history: list[dict[str, Any]] = []
    cpu, wall0, step, epoch = 0.0, time.perf_counter(), 0, 0
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def evaluate() -> None:
        if family.startswith("diffusion"):
            fake = _diffusion_sampler(ema.shadow, ev.n_eval, params.seed + 7919, autocast)
        else:
            fake = sample_frames(ema.shadow, z_eval, autocast=autocast)
        history.append({"step": step, "epoch": step / per_epoch, "cpu_seconds": cpu, **ev.score(fake)})

    evaluate()
    interval = budget / evals if budget is not None else 0.0
    next_eval = interval
    done = False
    while not done:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(params.seed * 1_000_003 + epoch))
        for i in range(0, n, bs):
            batch = perm[i : i + bs]
            if len(batch) < 2:
                continue
            real = _to_unit(frames_t[batch]).contiguous(memory_format=mf)
            t = time.process_time()
            loss_d, loss_g, _, _ = step_fn(g, d, opt_g, opt_d, real, nz=params.nz, policy=policy, autocast=autocast, ema=ema)
            cpu += time.process_time() - t
            step += 1
            if not (math.isfinite(float(loss_d)) and math.isfinite(float(loss_g))):
                history.append({"step": step, "error": "non-finite loss"})
                done = True
                break
            if budget is None:
                due, done = step % eval_every_steps == 0 or step >= planned_steps, step >= planned_steps
            else:
                due, done = cpu >= next_eval or cpu >= budget, cpu >= budget
                while next_eval <= cpu:
                    next_eval += interval
            if due:
                evaluate()
                snapshots[step] = copy.deepcopy(ema.shadow.state_dict())
            if done:
                break
        epoch += 1
    scored = [h for h in history if "error" not in h]
    chosen = choose(scored, rule=params.selection, max_memorisation_rate=params.max_memorisation_rate)
    return {"steps": step, "epochs": step / per_epoch, "cpu_seconds": cpu, "wall_seconds": time.perf_counter() - wall0,
            "chosen_step": chosen["entry"]["step"], "chosen_eligible": chosen["eligible"],
            "chosen": {k: chosen["entry"][k] for k in REPORTED}, "history": history}


def score_real_floor(ev: Evaluator) -> dict[str, Any]:
    """The ``real-train`` pseudo-family: no training; other frames of the training patients scored
    as if a generator had drawn them, i.e. what a generator that fits its training patients exactly
    (frames like theirs, not copies of the reference subset) scores on every measure. It calibrates
    the measures: where this reads far from 0.5, 0.5 is not the ideal of that measure here."""
    entry = {"step": 0, "epoch": 0.0, "cpu_seconds": 0.0, **ev.score(ev.real_floor)}
    return _untrained(entry, history=[entry])


def degraded_floor(ev: Evaluator, kind: str, amount: int, seed: int) -> np.ndarray:
    """The ``real-train`` frames made worse in a way no reader would call more realistic:
    ``blur``: a Gaussian blur of ``amount`` pixels' sigma (``scipy.ndimage.gaussian_filter``, within
    each frame); ``mix``: each frame the pixel mean of itself and ``amount - 1`` frames of *other*
    training patients (an average of patients, which no patient's scan looks like)."""
    import scipy.ndimage

    floor = ev.real_floor.astype(np.float64)
    if kind == "blur":
        out = scipy.ndimage.gaussian_filter(floor, sigma=(0, amount, amount))
    else:
        rng = np.random.default_rng(seed)
        pats = ev.real_floor_patients
        out = floor.copy()
        for i in range(len(floor)):
            others = np.flatnonzero(pats != pats[i])
            out[i] += floor[rng.choice(others, size=amount - 1, replace=len(others) < amount - 1)].sum(axis=0)
        out /= amount
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def score_degraded_floor(ev: Evaluator, family: str, seed: int) -> dict[str, Any]:
    """The ``real-train-blurS`` / ``real-train-mixK`` pseudo-families: :func:`degraded_floor` of the
    ``real-train`` frames, scored as if a generator had drawn them. A measure on which these beat
    ``real-train`` (or a trained generator) rewards averaging, not realism: the known answer that
    tells how far a measure's gain can be trusted (results README, "What the distribution measures reward")."""
    kind, amount = _degraded(family)
    fake = degraded_floor(ev, kind, amount, seed)
    entry = {"step": 0, "epoch": 0.0, "cpu_seconds": 0.0, **ev.score(fake)}
    return _untrained(entry, history=[entry])


def _degraded(family: str) -> tuple[str, int]:
    """``real-train-blur2`` -> ("blur", 2); ``real-train-mix4`` -> ("mix", 4)."""
    tail = family.removeprefix("real-train-")
    for kind in ("blur", "mix"):
        if tail.startswith(kind) and tail[len(kind):].isdigit() and int(tail[len(kind):]) >= (1 if kind == "blur" else 2):
            return kind, int(tail[len(kind):])
    raise SystemExit(f"--families: {family!r} is not real-train-blurS (S >= 1 pixels) or real-train-mixK (K >= 2 patients)")


def score_unseen_floor(ev: Evaluator) -> dict[str, Any]:
    """The ``real-unseen`` pseudo-family: the fold's test patients' frames (unseen by G and by the
    embedding) scored as if a generator had drawn them, against the validation patients: what new
    real patients score on the validation-side 1-NN tests (``nn1_embed``, the trainer's selection
    measure, and ``nn1_embed_patient``), and the same frames against the training patients
    (``train_nn1_embed_patient``: that test's floor). Both samples are cut to the same size (1-NN
    is only calibrated at equal sizes). ``test_nn1_embed_patient`` is the pipeline report's real floor
    on the test side: the validation patients' frames against the test patients', leave-one-patient-out
    on both sides (:func:`lusynth.metrics.fidelity.fidelity_with_floor`). The other measures are NaN here."""
    n = min(len(ev.real_embed), len(ev.test_embed))
    iv = balanced_real_subset(len(ev.real_embed), n, seed=0)
    it = balanced_real_subset(len(ev.test_embed), n, seed=0)
    entry: dict[str, Any] = {k: float("nan") for k in REPORTED}
    for key, groups in (("nn1_embed", ev.val_clips), ("nn1_embed_patient", ev.val_patients)):
        if groups is not None:
            parts = one_nn_accuracy_parts(ev.real_embed[iv], ev.test_embed[it], real_groups=groups[iv])
            entry[key], entry[f"{key}_real"], entry[f"{key}_fake"] = parts["accuracy"], parts["real_accuracy"], parts["fake_accuracy"]
    # the report's floor (``fidelity_with_floor``): the validation patients as the "generator" against
    # the test patients, leave-one-patient-out on *both* sides (a generator's draws have no patients)
    if ev.test_patients is not None and ev.val_patients is not None:
        parts = one_nn_accuracy_parts(ev.test_embed[it], ev.real_embed[iv], real_groups=ev.test_patients[it], fake_groups=ev.val_patients[iv])
        key = "test_nn1_embed_patient"
        entry[key], entry[f"{key}_real"], entry[f"{key}_fake"] = parts["accuracy"], parts["real_accuracy"], parts["fake_accuracy"]
    # the training-side test's floor: new patients against the training patients. A generator far
    # below it sits closer to its training patients than new patients do (memory); a faithful one
    # reads somewhat below it too (tests/metrics/test_patient_nn1_calibration.py), so it is no ideal
    m = min(len(ev.train_embed), len(ev.test_embed))
    ir, it2 = balanced_real_subset(len(ev.train_embed), m, seed=0), balanced_real_subset(len(ev.test_embed), m, seed=0)
    if ev.train_patients is not None:
        parts = one_nn_accuracy_parts(ev.train_embed[ir], ev.test_embed[it2], real_groups=ev.train_patients[ir])
        key = "train_nn1_embed_patient"
        entry[key], entry[f"{key}_real"], entry[f"{key}_fake"] = parts["accuracy"], parts["real_accuracy"], parts["fake_accuracy"]
    return {**_untrained(entry, history=[]), "n_frames": n}


def _untrained(entry: dict[str, Any], *, history: list[dict[str, Any]]) -> dict[str, Any]:
    """A pseudo-family's result in :func:`train_budgeted`'s shape: no steps, ``entry`` as the chosen scores."""
    return {"steps": 0, "epochs": 0.0, "cpu_seconds": 0.0, "wall_seconds": 0.0, "chosen_step": 0, "chosen_eligible": True,
            "chosen": {k: entry[k] for k in REPORTED}, "history": history}


def parse_variant(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``"NAME=FAMILY key=value ..."`` -> (NAME, FAMILY, {key: value}): a named family variant with
    :class:`GanParams` overrides (values coerced to the field's type; checked by GanParams itself)."""
    head, *pairs = spec.split()
    name, sep, family = head.partition("=")
    if not sep or not name or not family:
        raise SystemExit(f"--variant {spec!r}: start with NAME=FAMILY, e.g. 'fg-lr5=fastgan lr_g=5e-4 lr_d=5e-4'")
    defaults = GanParams()
    fields = {f.name for f in dataclasses.fields(GanParams)}
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields or key == "seed":
            raise SystemExit(f"--variant {spec!r}: {pair!r} is not key=value with key a GanParams field (not seed): "
                             f"{', '.join(sorted(fields - {'seed'}))}")
        kind = type(getattr(defaults, key))
        try:
            overrides[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
        except ValueError:
            raise SystemExit(f"--variant {spec!r}: {key}={value!r} is not a {kind.__name__}") from None
    try:
        dataclasses.replace(defaults, **overrides)
    except ValueError as e:
        raise SystemExit(f"--variant {spec!r}: {e}") from None
    return name, family, overrides


def _summary(values: list[float], *, interval: bool = False) -> dict[str, float]:
    """Mean, sample sd and the range over seeds; with ``interval``, the 95 % t interval of the mean
    (seeds as independent replicates: it covers training randomness, not the choice of patients)."""
    a = np.asarray(values, float)
    out = {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else float("nan"),
           "min": float(a.min()), "max": float(a.max())}
    if interval and len(a) > 1:
        sem = float(scipy.stats.sem(a))
        lo, hi = scipy.stats.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=sem) if sem > 0 else (a.mean(), a.mean())
        out["ci95_low"], out["ci95_high"] = float(lo), float(hi)
    return out


def _summarise(entry: dict[str, Any], seeds: list[int]) -> None:
    """Per family: each reported metric over the seeds of ``seeds`` it was run with, and the paired
    difference from the DCGAN (``_minus_dcgan``) and from the perfect generator (``_minus_oracle``,
    where ``phantom-oracle`` was run: the distance still to go) over the seeds both were run with."""
    runs = entry["runs"]
    have = {f: [s for s in seeds if str(s) in runs[f]] for f in runs}
    entry["summary"] = {f: {m: _summary([runs[f][str(s)]["chosen"][m] for s in have[f]]) for m in REPORTED
                            if all(m in runs[f][str(s)]["chosen"] for s in have[f])} for f in runs if have[f]}
    for ref, suffix in (("dcgan", "dcgan"), ("phantom-oracle", "oracle")):
        if ref not in runs:
            continue
        for f in entry["summary"]:
            paired = [s for s in have[f] if s in have[ref]]
            if f != ref and paired:
                for m in PAIRED:
                    if all(m in runs[x][str(s)]["chosen"] for x in (f, ref) for s in paired):  # older files lack train_*
                        diff = [runs[f][str(s)]["chosen"][m] - runs[ref][str(s)]["chosen"][m] for s in paired]
                        if np.isfinite(diff).all():
                            entry["summary"][f][f"{m}_minus_{suffix}"] = _summary(diff, interval=True)


def merge(paths: list[Path]) -> dict[str, Any]:
    """Several runs' results (e.g. one process per seed) as one: per store, the runs of every family
    and seed (a later file's run of the same family and seed wins), re-summarised; the stores must
    have been run at the same budget."""
    out: dict[str, Any] = {}
    for path in paths:
        doc = json.loads(path.read_text())
        if not out:
            out = {**doc, "stores": {}, "merged_from": []}
        out["merged_from"].append(path.name)
        out["seeds"] = sorted(set(out["seeds"]) | set(doc["seeds"]))
        out["families"] += [f for f in doc["families"] if f not in out["families"]]
        out.setdefault("variants", {}).update(doc.get("variants", {}))
        for name, entry in doc["stores"].items():
            have = out["stores"].setdefault(name, {**entry, "runs": {}})
            if have.get("budget_cpu_seconds") != entry.get("budget_cpu_seconds"):
                raise SystemExit(f"--merge: store {name!r} of {path} was run at budget {entry.get('budget_cpu_seconds')}, "
                                 f"not {have.get('budget_cpu_seconds')} as before; merge runs of one budget")
            for family, per_seed in entry["runs"].items():
                have["runs"].setdefault(family, {}).update(per_seed)
    for entry in out["stores"].values():
        _summarise(entry, out["seeds"])
    return out


#: what --curve tabulates per (budget, family): the issue's measure on both sides and MMD^2
CURVE = ("nn1_embed_patient", "test_nn1_embed_patient", "mmd_embed_ref")


def budget_curve(paths: list[Path], store: str, seeds: list[int] | None = None, families: list[str] | None = None) -> dict[str, Any]:
    """Which family at which budget: one row per (results file, family) of ``store``, sorted by budget,
    each with the :data:`CURVE` means over ``seeds`` (default: the seeds every file ran every family
    with) and their paired distances from the DCGAN and from the perfect generator at that budget
    (``_minus_dcgan`` / ``_minus_oracle``, t intervals over the seeds). ``families``: only these rows
    (and seeds; the DCGAN and the oracle still pair). Files must be of one store and differ in budget;
    no training."""
    entries = []
    for path in paths:
        try:
            entry = json.loads(path.read_text())["stores"][store]
        except (OSError, ValueError, KeyError, TypeError):
            raise SystemExit(f"--curve: {path} is not a bench_generators.py results file with store {store!r}; "
                             "give results files written by this bench (--out), one per budget") from None
        if families is not None:
            keep = set(families) | {"dcgan", "phantom-oracle"}
            entry = {**entry, "runs": {f: r for f, r in entry["runs"].items() if f in keep}}
        entries.append((path, entry))
    budgets = [float(e["budget_cpu_seconds"]) for _, e in entries]
    if len(set(budgets)) != len(budgets):
        raise SystemExit(f"--curve: two files share a budget ({sorted(budgets)}); merge runs of one budget first (--merge)")
    if seeds is None:
        common = [set.intersection(*(set(map(int, per_seed)) for per_seed in e["runs"].values())) for _, e in entries]
        seeds = sorted(set.intersection(*common))
    if not seeds:
        raise SystemExit("--curve: no seed was run by every family in every file; give --seeds")
    rows = []
    for path, entry in sorted(entries, key=lambda pe: float(pe[1]["budget_cpu_seconds"])):
        missing = {f: [s for s in seeds if str(s) not in per_seed] for f, per_seed in entry["runs"].items()}
        if any(missing.values()):
            raise SystemExit(f"--curve: {path} lacks seeds {missing}; give --seeds that every family ran")
        e = {"runs": entry["runs"]}
        _summarise(e, seeds)
        for family, summary in e["summary"].items():
            if families is not None and family not in families:
                continue
            row: dict[str, Any] = {"budget_cpu_seconds": float(entry["budget_cpu_seconds"]), "family": family, "file": path.name,
                                   "steps": _summary([entry["runs"][family][str(s)].get("steps", 0) for s in seeds])}
            for m in CURVE:
                for key in (m, f"{m}_minus_dcgan", f"{m}_minus_oracle"):
                    if key in summary:
                        row[key] = summary[key]
            rows.append(row)
    return {"store": store, "seeds": seeds, "from": [p.name for p in paths], "rows": rows}


def _curve_table(curve: dict[str, Any]) -> str:
    """The curve as a markdown table (means; paired distances with their 95 % t intervals)."""
    def cell(row: dict[str, Any], key: str) -> str:
        v = row.get(key)
        if v is None:
            return ""
        text = f"{v['mean']:+.3f}" if "_minus_" in key else f"{v['mean']:.3f}"
        return text + (f" [{v['ci95_low']:+.3f}, {v['ci95_high']:+.3f}]" if "ci95_low" in v else "")
    keys = [k for m in CURVE for k in (m, f"{m}_minus_oracle", f"{m}_minus_dcgan")]
    head = ["budget (CPU s)", "family", "steps", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in curve["rows"]:
        lines.append(f"| {r['budget_cpu_seconds']:.1f} | {r['family']} | {r['steps']['mean']:.0f} | " + " | ".join(cell(r, k) for k in keys) + " |")
    return "\n".join(lines)


def phantom_store(out: Path, patients: int) -> Path:
    """The demo phantom with ``patients`` patients ingested into ``out`` as the demo store is (one
    train/validation/test split by patient, 0.6/0.2/0.2)."""
    if patients < 12:
        raise SystemExit(f"{patients} phantom patients: give at least 12 (each class needs patients in train, validation and test)")
    ingest(None, out, phantom=PhantomParams(patients=patients))
    return out


def fresh_phantom(out: Path, store: FrameStore, patients: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per class of ``store``: :func:`fresh_patient_frames` of the same phantom with ``patients`` patients
    in all, ingested into ``out`` the same way (the new patients an oracle draws from)."""
    ingest(None, out, phantom=PhantomParams(patients=patients))
    more = open_store(out)
    return {label: fresh_patient_frames(store, more, label) for label in store.classes}


def fresh_patient_frames(store: FrameStore, fresh: FrameStore, label: str) -> tuple[np.ndarray, np.ndarray]:
    """The frames of ``fresh``'s patients of ``label`` that ``store`` does not have, and their patients.

    ``fresh`` is the same phantom with more patients, ingested the same way: a phantom patient never
    depends on how many patients come before or after it (:mod:`lusynth.data.phantom`), and the
    pseudonyms are keyed on the original ids, so the patients both stores share have the same
    frames, and the others are new patients drawn from the distribution ``store``'s came from.
    Checked: a shared patient whose frames differ means the two were not made alike."""
    a, b = store.manifest, fresh.manifest
    shared = set(a["patient_id"]) & set(b["patient_id"])
    if shared != set(a["patient_id"]):
        raise SystemExit("phantom-oracle: the fresh phantom does not contain every patient of the store (not the same phantom)")
    same = set(a["content_hash"]) == set(b.loc[b["patient_id"].isin(shared), "content_hash"])
    if not same:
        raise SystemExit("phantom-oracle: the shared patients' frames differ (not the same phantom or ingest settings)")
    rows = np.flatnonzero((~b["patient_id"].isin(shared) & (b["label"] == label)).to_numpy())
    return np.asarray(fresh.frames[rows]), b["patient_id"].to_numpy()[rows]


def oracle_frames(frames: np.ndarray, patients: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` frames, one from each of ``n`` different patients (chosen by ``seed``), one frame of each
    chosen at random: i.i.d. draws from the data's own distribution, what an ideal generator would
    hand over (each draw a new patient, as a generator's independent latents are)."""
    rng = np.random.default_rng(seed)
    names = np.unique(patients)
    if len(names) < n:
        raise SystemExit(f"phantom-oracle: {len(names)} fresh patients for {n} draws; the fresh phantom needs more patients")
    picked = rng.choice(names, size=n, replace=False)
    return np.stack([frames[rng.choice(np.flatnonzero(patients == pid))] for pid in picked])


def score_oracle(ev: Evaluator, frames: np.ndarray, patients: np.ndarray, seed: int) -> dict[str, Any]:
    """The ``phantom-oracle`` pseudo-family: :func:`oracle_frames` of patients no stage has seen, scored
    as if a generator had drawn them: each measure's reading for a *perfect* generator of the phantom
    (the known answer the issue's 1-NN bar is read against)."""
    entry = {"step": 0, "epoch": 0.0, "cpu_seconds": 0.0, **ev.score(oracle_frames(frames, patients, ev.n_eval, seed))}
    return _untrained(entry, history=[entry])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", action="append", default=[], help="NAME=PATH of a frame store (repeatable); default: phantom and POCUS, ingested here")
    ap.add_argument("--phantom-patients", type=int, metavar="N",
                    help="ingest a phantom of N patients (the demo phantom's settings otherwise) as store phantomN, instead of "
                         "the default stores (beside --store's): held-out patients enough for the leave-one-patient-out tests")
    ap.add_argument("--seeds", type=int, nargs="+", help="default 0 1 (--curve: the seeds its files share)")
    ap.add_argument("--families", nargs="+", help="default dcgan fastgan (--curve: every family of its files)")
    ap.add_argument("--budget", default="auto", help="CPU seconds of training steps per run, or 'auto': the seed-0 demo DCGAN's")
    ap.add_argument("--add-to", action="store_true",
                    help="add --families to the stores of --out, each at the budget recorded there (the same seeds), and re-summarise")
    ap.add_argument("--variant", action="append", default=[], metavar="'NAME=FAMILY key=value ...'",
                    help="a named family variant with GanParams overrides (repeatable), e.g. "
                         "'fg-lr5=fastgan lr_g=5e-4 lr_d=5e-4'; list NAME in --families")
    ap.add_argument("--evals", type=int, default=10, help="evaluations over the budget (plus one before training)")
    ap.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                    help="train nothing: join these results files (e.g. one per seed, one budget per store) into --out, re-summarised")
    ap.add_argument("--curve", type=Path, nargs="+", metavar="JSON",
                    help="train nothing: these results files (one per budget) of --curve-store as one budget curve, "
                         "over the seeds they share (or --seeds given explicitly; --families to keep only those rows), printed as a table and written to --out")
    ap.add_argument("--curve-store", default="phantom64", help="the store --curve reads (default phantom64)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "generators.json")
    a = ap.parse_args()
    if a.curve:
        curve = budget_curve(a.curve, a.curve_store, a.seeds, a.families)
        _write(a.out, curve)
        print(_curve_table(curve))
        print(f"wrote {a.out}")
        return
    a.seeds, a.families = a.seeds or [0, 1], a.families or ["dcgan", "fastgan"]
    if a.merge:
        _write(a.out, merge(a.merge))
        print(f"wrote {a.out}")
        return
    torch.set_num_threads(1)
    demo = GanParams()
    variants = {name: (family, overrides) for name, family, overrides in map(parse_variant, a.variant)}
    results: dict[str, Any] = {"seeds": a.seeds, "families": a.families, "threads": 1, "fold": FOLD, "budget_arg": a.budget,
                               "evals": a.evals, "selection": demo.selection, "stores": {}}
    if variants:
        results["variants"] = {name: {"family": family, "set": overrides} for name, (family, overrides) in variants.items()}
    if a.add_to:
        results = json.loads(a.out.read_text())
        if a.seeds != results["seeds"]:
            raise SystemExit(f"--add-to: --seeds {a.seeds} differ from {a.out}'s {results['seeds']}")
        results["families"] += [f for f in a.families if f not in results["families"]]
        results.setdefault("evals_per_family", {}).update({f: a.evals for f in a.families})
        if variants:
            results.setdefault("variants", {}).update({n: {"family": f, "set": o} for n, (f, o) in variants.items()})
    with tempfile.TemporaryDirectory(prefix="bench-generators-") as tmp:
        # the phantom stores the bench ingests itself, by name, with their patient counts (the oracle draws new patients)
        phantoms: dict[str, int] = {}
        specs = list(a.store)
        if not a.store and not a.phantom_patients:
            specs = _default_stores(Path(tmp))
            phantoms["phantom"] = PhantomParams().patients
        if a.phantom_patients:
            specs.append(f"phantom{a.phantom_patients}={phantom_store(Path(tmp) / f'phantom{a.phantom_patients}', a.phantom_patients)}")
            phantoms[f"phantom{a.phantom_patients}"] = a.phantom_patients
        for spec in specs:
            name, path = spec.split("=", 1)
            store = open_store(path)
            label = store.header.get("positive_class") or store.classes[-1]
            n_train = len(store.view(FOLD, "train", label=label))
            per_epoch = sum(1 for i in range(0, n_train, demo.batch_size) if n_train - i >= 2)
            planned_epochs = demo.epochs if demo.max_steps == 0 else max(1, min(demo.epochs, math.ceil(demo.max_steps / per_epoch)))
            planned_steps = planned_epochs * per_epoch
            eval_every_steps = demo.eval_every * per_epoch
            budget: float | None = None if a.budget == "auto" else float(a.budget)
            if a.add_to:
                if name not in results["stores"]:
                    raise SystemExit(f"--add-to: {a.out} has no store {name!r} (it has {sorted(results['stores'])})")
                entry = results["stores"][name]
                budget = float(entry["budget_cpu_seconds"])
                entry["runs"].update({f: {} for f in a.families})
            else:
                entry = {"path": str(path), "label": label, "n_train": n_train, "demo_planned_steps": planned_steps,
                         "runs": {f: {} for f in a.families}}
                if budget is not None:
                    entry["budget_cpu_seconds"], entry["budget_measured_by"] = budget, "given (--budget)"
                results["stores"][name] = entry
            fresh: tuple[np.ndarray, np.ndarray] | None = None
            if "phantom-oracle" in a.families:
                if name not in phantoms:
                    raise SystemExit(f"--families phantom-oracle: store {name!r} is not a phantom this run ingested (drop --store, or the family)")
                more = phantoms[name] + 4 * demo.n_eval + 8  # patients alternate class: n_eval of each class, and room to choose
                fresh = fresh_phantom(Path(tmp) / f"{name}-fresh", store, more)[label]
            for seed in a.seeds:
                params = GanParams(seed=seed)
                ev = make_evaluator(store, label, params, Path(tmp) / f"{name}-emb-{seed}")
                entry["n_val"], entry["n_test"] = len(ev.real_val), len(ev.real_test)
                for family in a.families:
                    measuring = budget is None
                    if measuring and family != "dcgan":
                        raise SystemExit("--budget auto: list dcgan first in --families (its demo run measures the budget)")
                    base, overrides = variants.get(family, (family, {}))
                    pseudo = {"real-train": score_real_floor, "real-unseen": score_unseen_floor}.get(family)
                    if family.startswith("real-train-"):
                        pseudo = functools.partial(score_degraded_floor, family=family, seed=seed)
                    if family == "phantom-oracle" and fresh is not None:
                        pseudo = functools.partial(score_oracle, frames=fresh[0], patients=fresh[1], seed=seed)
                    r = pseudo(ev) if pseudo else train_budgeted(base, ev, dataclasses.replace(params, **overrides), store.image_size, budget=budget,
                                       evals=a.evals, planned_steps=planned_steps, eval_every_steps=eval_every_steps)
                    if measuring:
                        budget = r["cpu_seconds"]
                        entry["budget_cpu_seconds"] = budget
                        entry["budget_measured_by"] = f"demo DCGAN seed {seed}: {planned_steps} steps ({planned_epochs} epochs x {per_epoch} batches)"
                        r["measured_budget"] = True
                    entry["runs"][family][str(seed)] = r
                    c = r["chosen"]
                    print(f"{name} seed {seed} {family}: {r['steps']} steps in {r['cpu_seconds']:.1f} CPU s ({r['wall_seconds']:.0f} s wall), "
                          f"chosen step {r['chosen_step']}: nn1_embed {c['nn1_embed']:.3f}, nn1_embed_patient {c['nn1_embed_patient']:.3f}, "
                          f"mmd_embed_ref {c['mmd_embed_ref']:.3f}, test nn1 {c['test_nn1_embed_patient']:.3f}, "
                          f"train nn1 {c['train_nn1_embed_patient']:.3f} (fake {c['train_nn1_embed_patient_fake']:.3f}), sharpness {c['sharpness_ratio']:.2f}", flush=True)
                    _write(a.out, results)
            _summarise(entry, a.seeds)
            _write(a.out, results)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
