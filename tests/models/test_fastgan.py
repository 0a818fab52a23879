"""FastGAN-lite (lusynth.models.fastgan): shapes and range, determinism, exact resume, ONNX parity,
and a short run on the phantom that moves its frames towards held-out real frames."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lusynth.data.framestore import open_store
from lusynth.export.onnx_export import _export_bytes, ort_session
from lusynth.gan.checkpoint import get_rng_state, set_rng_state
from lusynth.gan.ema import EMA
from lusynth.gan.step import _to_unit, sample_frames
from lusynth.metrics.fidelity import mmd2_rbf, reference_gamma
from lusynth.metrics.nearcopy import pixels
from lusynth.models import fastgan
from lusynth.models.fastgan import RECON_SIZE, FastGANConfig
from lusynth.runtime import autocast_for
from tests.gan import shared_store

POLICY = ("translation", "cutout")
SMALL = FastGANConfig(ngf=4, ndf=4, nz=16)


def _setup(cfg: FastGANConfig, seed: int) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer, EMA]:
    torch.manual_seed(seed)
    g, d = fastgan.generator(cfg), fastgan.discriminator(cfg)  # G before D from the global RNG, as the GAN stage builds them
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (g, d))  # the official Adam
    return g, d, opt_g, opt_d, EMA(g, 0.9)


def _steps(nets: tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer, EMA], n: int, cfg: FastGANConfig,
           precision: str = "fp32") -> None:
    g, d, opt_g, opt_d, ema = nets
    real = torch.linspace(-1, 1, 4 * cfg.image_size**2).reshape(4, 1, cfg.image_size, cfg.image_size)
    for _ in range(n):
        losses = fastgan.train_step(g, d, opt_g, opt_d, real, nz=cfg.nz, policy=POLICY, autocast=autocast_for("cpu", precision), ema=ema)
        assert all(torch.isfinite(t).all() for t in losses)


def _state(nets: tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer, EMA]) -> dict[str, torch.Tensor]:
    g, d, _, _, ema = nets
    return {**{f"g.{k}": v for k, v in g.state_dict().items()}, **{f"d.{k}": v for k, v in d.state_dict().items()},
            **{f"ema.{k}": v for k, v in ema.state_dict().items()}}


def _identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_range_and_reconstructions(size: int) -> None:
    cfg = FastGANConfig(image_size=size, ngf=4, ndf=4, nz=16)
    torch.manual_seed(0)
    g, d = fastgan.generator(cfg), fastgan.discriminator(cfg)
    x = g(torch.randn(3, cfg.nz, 1, 1))
    assert x.shape == (3, 1, size, size) and x.min() >= -1 and x.max() <= 1 and x.std() > 0
    logits, rec_all, rec_part = d.forward_with_recon(x, part=3)
    assert logits.shape == (3, 1) and d(x).shape == (3, 1)
    assert rec_all.shape == rec_part.shape == (3, 1, RECON_SIZE, RECON_SIZE)
    # skip-layer excitation is wired in: at 64 the 4x4 map gates the 32x32 one, at 128 also 8 -> 64
    assert set(g.sle) == ({"32", "64"} if size == 64 else {"32", "64", "128"})
    # every convolution is spectrally normalised, as in the official code
    convs = [m for m in (*g.modules(), *d.modules()) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)


def test_a_downscaled_fastgan_works_at_half_size_and_still_takes_and_makes_full_size_frames() -> None:
    cfg = FastGANConfig(image_size=64, ngf=4, ndf=4, nz=16, downscale=2)
    full = FastGANConfig(image_size=64, ngf=4, ndf=4, nz=16)
    torch.manual_seed(0)
    g, d = fastgan.generator(cfg), fastgan.discriminator(cfg)
    made = []
    g.to_img.register_forward_hook(lambda m, i, o: made.append(o))
    x = g(torch.randn(3, cfg.nz, 1, 1))
    assert x.shape == (3, 1, 64, 64) and x.min() >= -1 and x.max() <= 1
    # no learned layer of G at 64x64: its last layer makes 32x32, and the frame is that, bilinearly upsampled
    assert g.resolutions[-1] == 32 and set(g.sle) == {"32"} and made[0].shape == (3, 1, 32, 32)
    assert torch.equal(x, torch.nn.functional.interpolate(torch.tanh(made[0]), size=(64, 64), mode="bilinear", align_corners=False))
    # D judges 32x32 (its stem sees 32), takes 64x64 and reconstructs at the same size as a full D
    logits, rec_all, rec_part = d.forward_with_recon(x, part=2)
    assert logits.shape == (3, 1) and rec_all.shape == rec_part.shape == (3, 1, RECON_SIZE, RECON_SIZE)
    seen = []
    d.stem.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1]))
    d(x)
    assert seen == [32]
    # and it is cheaper: about half the FLOPs of a step of the full-size pair
    ratio = fastgan.flops_per_image(cfg)["train_step"] / fastgan.flops_per_image(full)["train_step"]
    assert 0.4 < ratio < 0.8


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="image_size=96"):
        FastGANConfig(image_size=96)
    with pytest.raises(ValueError, match="downscale=3"):
        FastGANConfig(downscale=3)
    with pytest.raises(ValueError, match="downscale=4.*32x32"):
        FastGANConfig(image_size=64, downscale=4)
    assert FastGANConfig(image_size=128, downscale=4).work_size == 32
    with pytest.raises(ValueError, match="recon_weight"):
        FastGANConfig(recon_weight=-1)


def test_train_step_rejects_a_discriminator_without_decoders() -> None:
    g, _, opt_g, opt_d, _ = _setup(SMALL, 0)
    from lusynth.models.dcgan import DCGANConfig, discriminator

    d = discriminator(DCGANConfig(nz=SMALL.nz, ngf=4, ndf=4))
    with pytest.raises(TypeError, match="FastGANDiscriminator"):
        fastgan.train_step(g, d, opt_g, opt_d, torch.zeros(2, 1, 64, 64), nz=SMALL.nz)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("downscale", [1, 2])
def test_same_seed_gives_bit_identical_weights(precision: str, downscale: int) -> None:
    cfg = dataclasses.replace(SMALL, downscale=downscale)
    runs = []
    for seed in (0, 0, 1):
        nets = _setup(cfg, seed)
        _steps(nets, 3, cfg, precision)
        runs.append(_state(nets))
    assert _identical(runs[0], runs[1])
    assert not _identical(runs[0], runs[2])  # the seed matters, so the check above can fail


def test_resume_from_a_checkpoint_continues_bit_identically() -> None:
    straight = _setup(SMALL, 0)
    _steps(straight, 4, SMALL)

    first = _setup(SMALL, 0)
    _steps(first, 2, SMALL)
    g, d, opt_g, opt_d, ema = first
    buf = io.BytesIO()
    torch.save({"g": g.state_dict(), "d": d.state_dict(), "ema": ema.state_dict(), "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(), "rng": get_rng_state()}, buf)
    torch.manual_seed(123)  # whatever happens in between (a new process) must not matter
    torch.rand(7)
    buf.seek(0)
    state = torch.load(buf, weights_only=False)
    resumed = _setup(SMALL, 99)  # fresh networks with other weights, overwritten by the checkpoint
    g, d, opt_g, opt_d, ema = resumed
    g.load_state_dict(state["g"])
    d.load_state_dict(state["d"])
    ema.load_state_dict(state["ema"])
    opt_g.load_state_dict(state["opt_g"])
    opt_d.load_state_dict(state["opt_d"])
    set_rng_state(state["rng"])
    _steps(resumed, 2, SMALL)
    assert _identical(_state(straight), _state(resumed))


class _FloatGenerator(nn.Module):
    """z (N, nz) -> G's float image (N, 1, S, S): the export under test, before any uint8 rounding."""

    def __init__(self, g: nn.Module, nz: int) -> None:
        super().__init__()
        self.g, self.nz = g, nz

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.g(z.reshape(-1, self.nz, 1, 1))


@pytest.mark.parametrize("downscale", [1, 2])
def test_generator_exports_to_onnx_and_onnxruntime_agrees(tmp_path: Path, downscale: int) -> None:
    cfg = dataclasses.replace(SMALL, downscale=downscale)
    nets = _setup(cfg, 0)
    _steps(nets, 2, cfg)  # trained a little: BatchNorm statistics and spectral-norm vectors are not the initial ones
    g = nets[4].shadow.eval()  # the EMA generator is what would ship
    module = _FloatGenerator(g, cfg.nz).eval()
    z = torch.randn(5, cfg.nz, generator=torch.Generator().manual_seed(3))
    onnx_bytes, exporter, notes = _export_bytes(module, z, input_name="z", output_name="image", opset=18, scratch=tmp_path)
    session = ort_session(onnx_bytes)
    for batch in (z, z[:1]):  # the batch axis is dynamic
        with torch.no_grad():
            ref = module(batch).numpy()
        got = session.run(None, {"z": batch.numpy()})[0]
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-4, (exporter, notes)
    # the reference must itself be eval-mode deterministic (no noise, no power iteration at eval)
    with torch.no_grad():
        assert torch.equal(module(z), module(z))


@pytest.mark.slow
def test_short_training_on_the_phantom_moves_samples_towards_held_out_frames(tmp_path_factory: pytest.TempPathFactory) -> None:
    """200 steps of FastGAN-lite on one phantom class: kernel MMD^2 (pixels, one bandwidth fixed from
    the real frames) between EMA samples and the class's validation patients falls well below the
    untrained generator's (whose eval-mode frames are saturated noise)."""
    store = open_store(shared_store(tmp_path_factory.getbasetemp()))
    label = "consolidation"
    train = np.asarray(store.frames[store.view(0, "train", label=label)])
    val = np.asarray(store.frames[store.view(0, "val", label=label)])
    cfg = FastGANConfig(ngf=4, ndf=4, nz=32)
    g, d, opt_g, opt_d, ema = _setup(cfg, 0)
    ema = EMA(g, 0.95)
    z = torch.randn(len(val), cfg.nz, 1, 1, generator=torch.Generator().manual_seed(5))

    gamma = reference_gamma(pixels(val))  # one ruler for before and after

    def mmd() -> float:
        return float(mmd2_rbf(pixels(val), pixels(sample_frames(ema.shadow, z)), gamma=gamma))

    before = mmd()
    frames = torch.from_numpy(train)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        batch = torch.randperm(len(train), generator=gen)[:8]
        fastgan.train_step(g, d, opt_g, opt_d, _to_unit(frames[batch]), nz=cfg.nz, policy=POLICY, ema=ema)
    after = mmd()
    assert after < 0.75 * before, (before, after)


def test_flops_count_the_decoders_in_the_step_and_grow_with_the_width() -> None:
    """D's forward counts the logits path only; the step adds its reconstruction decoders (D on real
    with them, fwd + bwd) to the DCGAN-style passes, so it exceeds 3 x (G + D) forward FLOPs."""
    f = fastgan.flops_per_image(SMALL)
    assert f["g_forward"] > 0 and f["d_forward"] > 0 and f["train_step"] > 3 * (f["g_forward"] + f["d_forward"])
    wide = fastgan.flops_per_image(FastGANConfig(ngf=8, ndf=8, nz=16))
    assert all(wide[k] > 2 * f[k] for k in f)  # convs scale ~ width^2
    from torch.utils.flop_counter import FlopCounterMode

    d, x = fastgan.FastGANDiscriminator(SMALL), torch.zeros(2, 1, 64, 64)  # the real D on a real tensor: the meta count agrees
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        d(x)
    assert fc.get_total_flops() / 2 == f["d_forward"]


def test_zero_recon_weight_skips_the_decoders_and_changes_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    """With recon_weight 0 the step does not run D's decoders (they keep their initial weights), and
    every other weight moves exactly as in a step that runs them and weights their loss by an exact
    zero: the skip is a speed-up, not a different model. A skip that drew a different random stream,
    still trained the decoders or dropped part of the hinge would fail."""
    import dataclasses

    off = dataclasses.replace(SMALL, recon_weight=0.0)
    nets_off = _setup(off, 3)  # each run seeds the global RNG its steps draw from
    decoders0 = {k: v.clone() for k, v in nets_off[1].state_dict().items() if k.startswith("decoder")}
    _steps(nets_off, 3, off)
    recon = fastgan._recon_loss
    monkeypatch.setattr(fastgan, "_recon_loss", lambda *args: 0.0 * recon(*args))  # decoders run, loss x 0
    nets_zeroed = _setup(SMALL, 3)
    _steps(nets_zeroed, 3, SMALL)
    a, b = _state(nets_off), _state(nets_zeroed)
    assert all(torch.equal(nets_off[1].state_dict()[k], v) for k, v in decoders0.items())
    assert not all(torch.equal(nets_zeroed[1].state_dict()[k], v) for k, v in decoders0.items())  # they ran (BatchNorm stats)
    kept = [k for k in a if not k.startswith("d.decoder")]
    assert kept and all(torch.equal(a[k], b[k]) for k in kept)
    assert fastgan.flops_per_image(off)["train_step"] < fastgan.flops_per_image(SMALL)["train_step"]
