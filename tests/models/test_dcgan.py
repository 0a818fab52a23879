"""The paper's DCGAN and its 64/128 family: shapes, parameter counts, init, instance noise, FLOPs."""

from __future__ import annotations

import pytest
import torch

from lusynth.models.dcgan import DCGANConfig, count_params, discriminator, flops_per_image, generator


def _g_channels(cfg: DCGANConfig) -> list[int]:
    n = cfg.n_layers
    return [cfg.nz] + [cfg.ngf * 2 ** (n - 2 - i) for i in range(n - 1)] + [cfg.nc]


def _d_channels(cfg: DCGANConfig) -> list[int]:
    n = cfg.n_layers
    return [cfg.nc] + [cfg.ndf * 2**i for i in range(n - 1)] + [1]


def _expected_params(ch: list[int], bn_from: int, bn_to: int) -> int:
    conv = sum(a * b * 16 for a, b in zip(ch, ch[1:], strict=False))  # 4x4 kernels, no bias
    bn = sum(2 * c for c in ch[bn_from:bn_to])
    return conv + bn


CONFIGS = [
    DCGANConfig(image_size=64),
    DCGANConfig(image_size=128, ngf=8, ndf=8),
    DCGANConfig(image_size=64, ngf=24, ndf=40, nz=32),
    DCGANConfig.paper(),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.image_size}-g{c.ngf}-d{c.ndf}")
def test_shapes_and_param_counts(cfg: DCGANConfig) -> None:
    torch.manual_seed(0)
    g, d = generator(cfg), discriminator(cfg)
    gc, dc = _g_channels(cfg), _d_channels(cfg)
    # G: BatchNorm after every layer but the last; D: from the 2nd layer to the one before the last
    assert count_params(g) == _expected_params(gc, 1, len(gc) - 1)
    assert count_params(d) == _expected_params(dc, 2, len(dc) - 1)
    with torch.no_grad():
        x = g(torch.randn(2, cfg.nz, 1, 1))
        assert x.shape == (2, cfg.nc, cfg.image_size, cfg.image_size)
        assert float(x.abs().max()) <= 1.0  # tanh
        assert d(x).shape == (2,)


def test_paper_config_is_the_papers_network() -> None:
    cfg = DCGANConfig.paper()
    assert (cfg.image_size, cfg.nz, cfg.ngf, cfg.ndf, cfg.dropout, cfg.n_layers) == (256, 100, 64, 64, 0.25, 7)
    g, d = generator(cfg), discriminator(cfg)
    gconv = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    dconv = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in gconv] == [2048, 1024, 512, 256, 128, 64, 1]
    assert [m.out_channels for m in dconv] == [64, 128, 256, 512, 1024, 2048, 1]
    assert all(m.kernel_size == (4, 4) for m in gconv + dconv)
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.25 for m in d.modules()) == 6
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules()) == 5  # not after the first conv
    assert isinstance(list(g.modules())[-1], torch.nn.Tanh)


def test_dcgan_init_statistics() -> None:
    torch.manual_seed(0)
    g = generator(DCGANConfig(image_size=64, ngf=32))
    w = torch.cat([m.weight.detach().flatten() for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    bn = torch.cat([m.weight.detach() for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(float(w.mean())) < 1e-3 and abs(float(w.std()) - 0.02) < 1e-3
    assert abs(float(bn.mean()) - 1.0) < 0.01 and float(bn.std()) < 0.03


def test_instance_noise_really_turns_off() -> None:
    x = torch.randn(4, 1, 64, 64)
    torch.manual_seed(0)
    d_off = discriminator(DCGANConfig(image_size=64, dropout=0.0, instance_noise=0.0)).train()
    assert torch.equal(d_off(x), d_off(x))  # no hidden noise when the variance is 0
    torch.manual_seed(0)
    d_on = discriminator(DCGANConfig(image_size=64, dropout=0.0, instance_noise=0.2)).train()
    assert not torch.equal(d_on(x), d_on(x))
    d_on.eval()  # scores for audits must be deterministic
    assert torch.equal(d_on(x), d_on(x))
    with pytest.raises(ValueError, match="instance_noise"):
        DCGANConfig(instance_noise=-1)


def test_flops_match_the_analytic_count() -> None:
    cfg = DCGANConfig(image_size=64)
    f = flops_per_image(cfg)
    ch, size, analytic = _g_channels(cfg), 1, 0
    for a, b in zip(ch, ch[1:], strict=False):  # transposed conv: 2 * cin * cout * 16 per input pixel
        analytic += 2 * a * b * 16 * size * size
        size = 4 if size == 1 else size * 2
    assert f["g_forward"] == analytic
    # a step costs G fwd + 3 D fwd + backward passes: between 3x and 4x the forward work
    assert 3 * (f["g_forward"] + 3 * f["d_forward"]) / 2 < f["train_step"] < 4 * (f["g_forward"] + 3 * f["d_forward"])


def test_unsupported_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="image_size=96"):
        DCGANConfig(image_size=96)
