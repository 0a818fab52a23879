"""CPU training fast paths (lusynth.models.fastcpu): the same maths as the stock layers, taken only
where they should be, an exact dropout keep rate, and the allocator setting that really retains memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lusynth.gan.params import GanParams
from lusynth.gan.step import build_networks
from lusynth.models import fastcpu
from lusynth.models.dcgan import DCGANConfig, discriminator, flops_per_image, generator
from lusynth.models.fastcpu import (
    ChannelsLastAdam,
    FastBatchNorm2d,
    FastDropout,
    LowResConv2d,
    LowResConvTranspose2d,
    conv2d_dense,
    conv2d_gemm,
    conv_transpose2d_dense,
    conv_transpose2d_gemm,
)

FORMATS = [torch.contiguous_format, torch.channels_last]


def _grads(y: torch.Tensor, inputs: list[torch.Tensor], seed: int = 1) -> list[torch.Tensor]:
    go = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    return list(torch.autograd.grad(y, inputs, go))


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> None:
    scale = a.abs().max().item() or 1.0
    err = (a - b).abs().max().item() / scale
    assert err < rtol, f"relative error {err:.2e}"


@pytest.mark.parametrize("x_fmt", FORMATS, ids=["x-nchw", "x-nhwc"])
@pytest.mark.parametrize("w_fmt", FORMATS, ids=["w-nchw", "w-nhwc"])
@pytest.mark.parametrize(("kind", "c_in", "c_out", "size", "stride", "padding"), [
    ("conv_t", 64, 32, 4, 2, 1), ("conv_t", 100, 48, 1, 1, 0), ("conv_t", 8, 3, 5, 2, 1),
    ("conv", 32, 64, 8, 2, 1), ("conv", 64, 1, 4, 1, 0), ("conv", 5, 7, 9, 2, 1),
])
def test_gemm_kernels_match_stock(x_fmt, w_fmt, kind, c_in, c_out, size, stride, padding) -> None:
    """Outputs and both gradients, for either memory layout of input and weight."""
    torch.manual_seed(0)
    x = torch.randn(3, c_in, size, size).contiguous(memory_format=x_fmt).requires_grad_(True)
    if kind == "conv_t":
        w = torch.randn(c_in, c_out, 4, 4).contiguous(memory_format=w_fmt).requires_grad_(True)
        ref, new = F.conv_transpose2d(x, w, stride=stride, padding=padding), conv_transpose2d_gemm(x, w, stride, padding)
    else:
        w = torch.randn(c_out, c_in, 4, 4).contiguous(memory_format=w_fmt).requires_grad_(True)
        ref, new = F.conv2d(x, w, stride=stride, padding=padding), conv2d_gemm(x, w, stride, padding)
    assert new.shape == ref.shape
    _close(ref, new)
    for a, b in zip(_grads(ref, [x, w]), _grads(new, [x, w]), strict=True):
        _close(a, b)


@pytest.mark.parametrize("x_fmt", FORMATS, ids=["x-nchw", "x-nhwc"])
@pytest.mark.parametrize("w_fmt", FORMATS, ids=["w-nchw", "w-nhwc"])
@pytest.mark.parametrize(("kind", "c_in", "c_out"), [("conv_t", 100, 48), ("conv_t", 7, 5), ("conv", 64, 1), ("conv", 6, 3)])
def test_dense_kernels_match_stock(x_fmt, w_fmt, kind, c_in, c_out) -> None:
    """G's first and D's last layer as one matmul: outputs and both gradients, either memory layout."""
    torch.manual_seed(0)
    if kind == "conv_t":
        x = torch.randn(3, c_in, 1, 1).contiguous(memory_format=x_fmt).requires_grad_(True)
        w = torch.randn(c_in, c_out, 4, 4).contiguous(memory_format=w_fmt).requires_grad_(True)
        ref, new = F.conv_transpose2d(x, w), conv_transpose2d_dense(x, w)
    else:
        x = torch.randn(3, c_in, 4, 4).contiguous(memory_format=x_fmt).requires_grad_(True)
        w = torch.randn(c_out, c_in, 4, 4).contiguous(memory_format=w_fmt).requires_grad_(True)
        ref, new = F.conv2d(x, w), conv2d_dense(x, w)
    assert new.shape == ref.shape
    _close(ref, new)
    for a, b in zip(_grads(ref, [x, w]), _grads(new, [x, w]), strict=True):
        _close(a, b)


def test_dense_kernels_stay_float32_under_bf16_autocast() -> None:
    """Under CPU bf16 autocast the one-matmul layers compute in float32 (weights are float32 masters),
    so their result is the float32 result, and gradients reach a bf16 input in bf16."""
    torch.manual_seed(0)
    z = torch.randn(4, 100, 1, 1)
    w_g = torch.randn(100, 32, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    x = torch.randn(4, 64, 4, 4).to(torch.bfloat16).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    w_d = torch.randn(1, 64, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_g, y_d = conv_transpose2d_dense(z, w_g), conv2d_dense(x, w_d)
    assert y_g.dtype == y_d.dtype == torch.float32
    _close(F.conv_transpose2d(z, w_g), y_g)
    _close(F.conv2d(x.float(), w_d), y_d)
    (gx,) = torch.autograd.grad(y_d.sum(), [x])
    assert gx.dtype == torch.bfloat16


def _count_gemm_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple[int, ...]]]:
    """Record the input shapes each fast kernel is called with (GEMM route and one-matmul route)."""
    calls: dict[str, list[tuple[int, ...]]] = {"conv": [], "conv_t": [], "conv_dense": [], "conv_t_dense": []}
    real = {"conv": fastcpu.conv2d_gemm, "conv_t": fastcpu.conv_transpose2d_gemm,
            "conv_dense": fastcpu.conv2d_dense, "conv_t_dense": fastcpu.conv_transpose2d_dense}
    names = {"conv": "conv2d_gemm", "conv_t": "conv_transpose2d_gemm", "conv_dense": "conv2d_dense", "conv_t_dense": "conv_transpose2d_dense"}

    def spy(kind: str):  # type: ignore[no-untyped-def]
        def call(x, *args):  # type: ignore[no-untyped-def]
            calls[kind].append(tuple(x.shape))
            return real[kind](x, *args)
        return call

    for kind, name in names.items():
        monkeypatch.setattr(fastcpu, name, spy(kind))
    return calls


def test_gemm_route_only_for_wide_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_gemm_calls(monkeypatch)
    cfg = DCGANConfig(image_size=64, ngf=8, ndf=8)
    torch.manual_seed(0)
    g, d = generator(cfg), discriminator(cfg)
    d(g(torch.randn(4, cfg.nz, 1, 1))).sum().backward()
    assert calls["conv"] == calls["conv_t"] == [], "narrow layers stay with oneDNN (faster there)"
    wide = LowResConvTranspose2d(1024, 512, 4, 2, 1, bias=False)  # the paper's G at 128x128: 8.4M weights
    wide(torch.randn(2, 1024, 4, 4)).sum().backward()
    assert calls["conv_t"] == [(2, 1024, 4, 4)]


def test_gemm_route_only_for_4x4_sides_while_training_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_gemm_calls(monkeypatch)
    monkeypatch.setattr(fastcpu, "LOW_RES_MIN_WEIGHT", 0)  # the spatial rule alone, on a small network
    cfg = DCGANConfig(image_size=64, ngf=8, ndf=8)
    torch.manual_seed(0)
    g, d = generator(cfg), discriminator(cfg)
    z = torch.randn(4, cfg.nz, 1, 1)
    d(g(z)).sum().backward()
    # G: the 4x4 -> 8x8 layer; D: the 8x8 -> 4x4 layer; nothing larger. G's 1x1 -> 4x4 and D's
    # 4x4 -> 1x1 layers are one plain matmul (the dense route), at any width
    assert [s[-2:] for s in calls["conv_t"]] == [(4, 4)] and [s[-2:] for s in calls["conv_t_dense"]] == [(1, 1)]
    assert [s[-2:] for s in calls["conv"]] == [(8, 8)] and [s[-2:] for s in calls["conv_dense"]] == [(4, 4)]
    for v in calls.values():
        v.clear()
    g.eval(), d.eval()
    with torch.no_grad():
        d(g(z))
    assert not any(calls.values()), "eval mode (sampling, export) must use the stock kernels"
    g.train()
    with torch.no_grad():
        g(z)
    assert calls["conv_t"] == calls["conv_t_dense"] == [], "no autograd, no GEMM route"


@pytest.mark.parametrize("cfg", [DCGANConfig(image_size=64, ngf=8, ndf=8, dropout=0.0), DCGANConfig(image_size=128, ngf=4, ndf=4, dropout=0.0)],
                         ids=["64", "128"])
def test_fast_networks_train_like_stock_ones(cfg: DCGANConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same parameters (a stock state dict loads), same outputs and gradients in training mode."""
    calls = _count_gemm_calls(monkeypatch)
    monkeypatch.setattr(fastcpu, "LOW_RES_MIN_WEIGHT", 0)  # take the GEMM route in these small networks
    torch.manual_seed(0)
    g_stock, d_stock = generator(DCGANConfig(**{**cfg.__dict__, "fast_cpu": False})), discriminator(DCGANConfig(**{**cfg.__dict__, "fast_cpu": False}))
    g_fast, d_fast = generator(cfg), discriminator(cfg)
    assert any(isinstance(m, LowResConvTranspose2d) for m in g_fast.modules())
    assert any(isinstance(m, LowResConv2d) for m in d_fast.modules())
    assert not any(isinstance(m, (LowResConv2d, LowResConvTranspose2d, FastDropout)) for m in [*g_stock.modules(), *d_stock.modules()])
    g_fast.load_state_dict(g_stock.state_dict()), d_fast.load_state_dict(d_stock.state_dict())
    z = torch.randn(6, cfg.nz, 1, 1)
    outs = []
    for g, d in ((g_stock, d_stock), (g_fast, d_fast)):
        fake = g(z)
        logit = d(fake)
        params = [*g.parameters(), *d.parameters()]
        outs.append((fake.detach(), logit.detach(), _grads(logit, params)))
    (f0, l0, g0), (f1, l1, g1) = outs
    assert all(calls.values()), f"the fast networks went through the GEMM and the dense routes: {calls}"
    _close(f0, f1), _close(l0, l1, rtol=1e-4)
    for a, b in zip(g0, g1, strict=True):
        _close(a, b, rtol=1e-3)  # BatchNorm in training mode amplifies float32 rounding a little


def test_flop_count_does_not_depend_on_the_kernels() -> None:
    cfg = DCGANConfig(image_size=64, ngf=8, ndf=8)
    assert flops_per_image(cfg) == flops_per_image(DCGANConfig(**{**cfg.__dict__, "fast_cpu": False}))


def test_fast_dropout_is_an_exact_bernoulli_mask_from_the_torch_rng() -> None:
    drop = FastDropout(0.25)
    x = torch.randn(8, 16, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    torch.manual_seed(3)
    y = drop(x)
    torch.manual_seed(3)
    assert torch.equal(drop(x), y), "same seed, same mask: runs stay reproducible and resumable"
    kept = y != 0
    n = kept.numel()
    rate = kept.float().mean().item()
    sigma = (0.75 * 0.25 / n) ** 0.5
    assert abs(rate - 0.75) < 5 * sigma, f"keep rate {rate} vs 0.75 (5 sigma = {5 * sigma:.4f})"
    torch.testing.assert_close(y[kept], (x / 0.75)[kept])
    assert y.is_contiguous(memory_format=torch.channels_last)
    (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    torch.testing.assert_close(gx, kept.float() / 0.75)
    # every channel and every image gets the same keep rate (8192 and 16384 draws each: 5 sigma < 0.025)
    per_channel, per_image = kept.float().mean(dim=(0, 2, 3)), kept.float().mean(dim=(1, 2, 3))
    assert (per_channel - 0.75).abs().max() < 0.025 and (per_image - 0.75).abs().max() < 0.025
    drop.eval()
    assert drop(x) is x or torch.equal(drop(x), x)
    assert torch.equal(FastDropout(0.0)(x), x)
    assert not FastDropout(1.0)(x).any()


@pytest.mark.parametrize("p", [0.35, 0.45])
def test_fast_dropout_off_the_2_15_grid_keeps_1_minus_p(p: float) -> None:
    """The classifier searches dropout 0.35 and 0.45, which the 15-bit route would round by up to
    2**-16; the 31-bit route keeps the exact rate and stays reproducible from the torch seed."""
    drop = FastDropout(p)
    x = torch.ones(16, 24, 64, 64).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(5)
    y = drop(x)
    torch.manual_seed(5)
    assert torch.equal(drop(x), y)
    rate = (y != 0).float().mean().item()
    sigma = (p * (1 - p) / y.numel()) ** 0.5  # 1.6M draws: 5 sigma ~ 0.002, far below a wrong rate's miss
    assert abs(rate - (1 - p)) < 5 * sigma, f"keep rate {rate} vs {1 - p}"
    assert torch.equal(y.unique(), torch.tensor([0.0, 1 / (1 - p)]))


@pytest.mark.parametrize("p", [0.25, 0.5, 2**-8, 0.3], ids=["7-bit grid", "7-bit 0.5", "15-bit grid", "31-bit"])
def test_fast_dropout_keep_rate_is_exact_at_every_byte_of_the_random_word(p: float) -> None:
    """The 7-bit route reads 4 elements from each 31-bit ``random_()`` int32, the 4th from a byte
    whose top bit is always 0: each of the 4 positions (and the 15- and 31-bit routes) must keep at rate
    1 - p. 2**20 elements per position: 5 sigma < 0.0025."""
    torch.manual_seed(11)
    n = 1 << 22
    keep = fastcpu._keep_mask(n, p, torch.float32)
    assert keep.dtype == torch.float32 and set(keep.unique().tolist()) <= {0.0, 1.0}
    per_position = keep.view(-1, 4).mean(dim=0)
    sigma = (p * (1 - p) / (n // 4)) ** 0.5
    assert (per_position - (1 - p)).abs().max() < 5 * sigma, f"keep rate by byte position {per_position.tolist()} vs {1 - p}"
    assert fastcpu._keep_mask(5, p, torch.bfloat16).dtype == torch.bfloat16


def _bn_pair(c: int) -> tuple[torch.nn.BatchNorm2d, FastBatchNorm2d]:
    stock, fast = torch.nn.BatchNorm2d(c), FastBatchNorm2d(c)
    with torch.no_grad():
        stock.weight.copy_(torch.linspace(0.5, 1.5, c))
        stock.bias.copy_(torch.linspace(-1.0, 1.0, c))
    fast.load_state_dict(stock.state_dict())
    return stock, fast


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", [(16, 12, 62, 62), (3, 5, 7, 9), (2, 16, 1, 3)], ids=["clf-block1", "odd", "16ch"])
def test_fast_batchnorm_trains_like_stock(shape: tuple[int, int, int, int], dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output, input/weight/bias gradients and running statistics (two steps) against a float64
    reference: the fast route is as close as stock BatchNorm or closer."""
    c = shape[1]
    stock, fast = _bn_pair(c)
    ref = torch.nn.BatchNorm2d(c).double()
    ref.load_state_dict(stock.state_dict())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).relu_().contiguous(memory_format=torch.channels_last)  # after ReLU, as in the classifier
    g = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last)
    calls = []
    real = fastcpu._RowsBatchNorm.apply
    monkeypatch.setattr(fastcpu._RowsBatchNorm, "apply", lambda *a: calls.append(1) or real(*a))
    results = []
    for bn, xt, gt in ((stock, x.to(dtype), g.to(dtype)), (fast, x.to(dtype), g.to(dtype)), (ref, x.double(), g.double())):
        for _ in range(2):
            xi = xt.clone().requires_grad_(True)
            y = bn(xi)
            y.backward(gt)
        assert y.dtype == xt.dtype and xi.grad is not None and xi.grad.dtype == xt.dtype
        assert y.is_contiguous(memory_format=torch.channels_last)
        results.append([y.detach(), xi.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var])
    assert len(calls) == 2, "the fast layer took its route"
    assert int(fast.num_batches_tracked) == int(stock.num_batches_tracked) == 2
    for name, a, b, r in zip(["out", "grad x", "grad w", "grad b", "running mean", "running var"], *results, strict=True):
        scale = r.abs().max().item() or 1.0
        err_stock, err_fast = ((t.double() - r).abs().max().item() / scale for t in (a, b))
        # bf16: the output and the input gradient are rounded to 8 bits, as stock's
        tol = 3e-2 if dtype == torch.bfloat16 and name in ("out", "grad x") else 1e-5
        assert err_fast < max(tol, 2 * err_stock), f"{name}: {err_fast:.1e} (stock {err_stock:.1e})"


def test_fast_batchnorm_is_the_stock_layer_off_its_route() -> None:
    """Eval mode (inference, export), NCHW input, wide layers and BatchNorm without running stats
    run the stock code: bit-identical outputs."""
    x = torch.randn(4, 12, 9, 9)
    for train, fmt, c in ((False, torch.channels_last, 12), (True, torch.contiguous_format, 12), (True, torch.channels_last, 32)):
        stock, fast = _bn_pair(c)
        stock.train(train), fast.train(train)
        xi = torch.randn(4, c, 9, 9).contiguous(memory_format=fmt)
        assert torch.equal(stock(xi), fast(xi)), (train, fmt, c)
    stock, fast = torch.nn.BatchNorm2d(12, track_running_stats=False), FastBatchNorm2d(12, track_running_stats=False)
    xi = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(stock(xi), fast(xi))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        FastBatchNorm2d(12)(torch.randn(1, 12, 1, 1).contiguous(memory_format=torch.channels_last))


def test_build_networks_uses_fused_adam_only_with_fast_cpu() -> None:
    cfg = DCGANConfig(image_size=64, ngf=4, ndf=4)
    *_, opt_g, opt_d, mf = build_networks(cfg, GanParams(ngf=4, ndf=4), "cpu")
    assert opt_g.defaults["fused"] and opt_d.defaults["fused"] and mf == torch.channels_last
    assert isinstance(opt_g, ChannelsLastAdam) and isinstance(opt_d, ChannelsLastAdam)
    *_, opt_g, _, _ = build_networks(DCGANConfig(image_size=64, ngf=4, ndf=4, fast_cpu=False), GanParams(ngf=4, ndf=4, fast_cpu=False), "cpu")
    assert not opt_g.defaults["fused"] and type(opt_g) is torch.optim.Adam


@pytest.mark.parametrize("grad_fmt", FORMATS, ids=["grad-nchw", "grad-nhwc"])
def test_channels_last_adam_is_bit_identical_to_fused_adam_without_the_copies(grad_fmt: torch.memory_format,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Same weights and moments as ``torch.optim.Adam(fused=True)`` bit for bit over several steps
    (channels_last weights, its gradients in either layout, a 1-D parameter beside them), the state
    dicts load into each other, and the fused kernel gets no non-contiguous tensor to copy."""
    torch.manual_seed(0)
    w0 = torch.randn(8, 6, 4, 4).contiguous(memory_format=torch.channels_last)
    b0 = torch.randn(8)
    params = {k: [w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)] for k in ("stock", "cl")}
    opts = {"stock": torch.optim.Adam(params["stock"], lr=1e-2, betas=(0.5, 0.999), fused=True),
            "cl": ChannelsLastAdam(params["cl"], lr=1e-2, betas=(0.5, 0.999), fused=True)}
    seen: list[bool] = []
    real = torch._fused_adam_

    def spy(ps, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(t.is_contiguous() for t in ps)
        return real(ps, *args, **kwargs)

    for step in range(4):
        g = torch.randn(8, 6, 4, 4, generator=torch.Generator().manual_seed(step))
        for k in ("stock", "cl"):
            # stock gets the gradient in its weight's layout, as autograd's layout contract gives it (stock fused
            # Adam pairs a contiguous gradient with a channels_last weight element by element in memory order: wrong)
            params[k][0].grad = g.clone().contiguous(memory_format=grad_fmt if k == "cl" else torch.channels_last)
            params[k][1].grad = g.flatten()[:8].clone()
            if k == "cl":
                monkeypatch.setattr(torch, "_fused_adam_", spy)
            opts[k].step()
            monkeypatch.setattr(torch, "_fused_adam_", real)
    assert seen and all(seen), "ChannelsLastAdam passed a non-contiguous tensor to the fused kernel"
    for a, b in zip(params["stock"], params["cl"], strict=True):
        assert torch.equal(a, b)
    sa, sb = opts["stock"].state_dict(), opts["cl"].state_dict()
    for i in sa["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(sa["state"][i][key], sb["state"][i][key]), key
    opts["stock"].load_state_dict(sb)
    opts["cl"].load_state_dict(sa)


_RETAIN_SCRIPT = """
import json, os, torch
from lusynth.runtime import retain_freed_memory

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def alloc_free():
    t = torch.empty(48 * 2**20 // 4).fill_(1.0)  # 48 MB: above glibc's mmap threshold, so by default freed straight back to the OS
    before_free = rss()
    del t
    return before_free - rss()  # how much the free gave back

out = {"default": alloc_free()}
with retain_freed_memory() as active:
    out["active"] = active
    out["returned"] = alloc_free()
    held = rss()
out["trimmed"] = held - rss()
out["default_after"] = alloc_free()
print(json.dumps(out))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc and /proc")
def test_retain_freed_memory_keeps_big_blocks_in_the_heap_and_gives_them_back_after() -> None:
    """In a fresh interpreter: malloc's settings and heap are process-wide, and in a pytest worker
    the test ran after other tests' training (which enters this block). CI once read 0 bytes for
    the "default" free there, as if another thread was inside the block (M_MMAP_MAX 0); the exact
    cause was not found, and a fresh process owns its allocator state either way."""
    res = subprocess.run([sys.executable, "-c", _RETAIN_SCRIPT], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout.strip().splitlines()[-1])
    mb = 2**20
    assert r["default"] > 40 * mb, f"default glibc returns a big block on free ({r})"
    assert r["active"]
    assert r["returned"] < 8 * mb, f"inside the block a freed big block stays in the heap ({r})"
    assert r["trimmed"] > 40 * mb, f"leaving the block trims the retained memory ({r})"
    assert r["default_after"] > 40 * mb, f"the defaults are back ({r})"


def test_fast_batchnorm_output_takes_an_in_place_relu_like_stock() -> None:
    """The usual ``BatchNorm -> ReLU(inplace=True)``: the fast route's output is a fresh tensor,
    not a view made inside the autograd function (autograd forbids modifying those in place)."""
    stock, fast = _bn_pair(8)
    x = torch.randn(4, 8, 6, 5).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    outs = []
    for bn in (stock, fast):
        y = torch.nn.ReLU(inplace=True)(bn(x))
        outs.append((y.detach(), *_grads(y, [x, bn.weight])))
    for a, b in zip(*outs, strict=True):
        _close(a, b, rtol=1e-4)
