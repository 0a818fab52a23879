"""Drop-in CPU training kernels for the DCGAN: same layers, same parameters, faster on CPU.

Profiled at the paper's 256x256 and at the demo's 64x64 size, oneDNN and ATen are slow in a few
places of a DCGAN step (the measurements and the commands that produced them:
``benchmarks/results/README.md``):

* **Wide convolutions whose low-resolution side is 4x4** (G's 4x4 -> 8x8 transposed conv, D's
  8x8 -> 4x4 conv): with 1024-2048 channels and only 16 positions per image, oneDNN's weight
  gradient runs well below the matmul rate. Written as one matrix multiply plus
  ``fold``/``unfold`` (col2im/im2col), the same arithmetic runs as a single large GEMM. That pays
  only for wide layers, so the route is taken from :data:`LOW_RES_MIN_WEIGHT` weights up
  (``benchmarks/bench_gan_layers.py`` measures where).
  :class:`LowResConv2d` and :class:`LowResConvTranspose2d` subclass ``nn.Conv2d`` and
  ``nn.ConvTranspose2d`` (same parameter names and shapes, so checkpoints, initialisation, FLOP
  counting and ONNX export are unchanged) and take the GEMM route only while **training on the
  CPU**; in eval mode, on other devices, on the meta device and under export they are the
  stock layers. The results agree with the stock kernels to float32 rounding (tested).
* **Convolutions that are one matrix product**: G's first layer (1x1 latent -> 4x4, no padding)
  and D's last (4x4 -> 1x1 logit, no padding) touch every weight once per image; as convolutions,
  oneDNN ran them 2.5-7x slower (forward + backward) than the plain matmul
  ``(B, Cin) @ (Cin, Cout*kh*kw)`` (:func:`conv_transpose2d_dense`, :func:`conv2d_dense`), at
  the demo and the paper widths alike. They carry a negligible share of the FLOPs and read every
  weight once, so under bf16 autocast they stay float32 (no per-call weight cast, and more exact).
* **Dropout's Bernoulli mask**: ``bernoulli_`` is a large share of a paper-size step.
  :class:`FastDropout` draws 31 random bits (one ``random_()`` int32) per *four* elements and
  keeps an element when the low 7 bits of its byte, a uniform integer in [0, 128), are
  >= ``p * 128``: an exact Bernoulli(1 - p) for ``p`` a multiple of 2**-7 (the paper's 0.25 is;
  ``p`` on the 2**-15 grid reads 15 bits per element; any other ``p``, as the classifier's 0.35
  and 0.45, a whole 31-bit word: keep rate within 2**-32 of 1 - p), from the same torch CPU
  generator (so checkpointed RNG state still makes runs resumable bit for bit). The comparison
  writes the 0/1 mask in the activations' dtype (``torch.ge(..., out=)``), the multiplier of both
  the forward and the backward pass: a bool mask was cast inside every ``mul``, twice per layer
  (9 % of a bf16 demo step). Other devices use ``F.dropout``.
* **Fused Adam on channels_last weights**: ``torch.optim.Adam(fused=True)`` copies every
  non-contiguous tensor (weight, gradient, both moments) to a contiguous buffer and back on each
  step, half of a demo-size G update. :class:`ChannelsLastAdam` hands the same kernel each
  channels_last tensor's contiguous NHWC view instead (same storage, same elementwise update, so
  bit-identical results and interchangeable state dicts).
* **BatchNorm on few channels in channels_last** (the classifier's first block: 12 channels at
  62x62): ATen's channels_last BatchNorm is slow when the channel count is below one vector width,
  and pathological on two threads (fwd + bwd 16-19 ms against ~3 ms at 16x12x62x62).
  :class:`FastBatchNorm2d` computes the same training-mode BatchNorm from a handful of wide,
  vectorised ATen ops on the tensor viewed as rows of W x C values (benchmarks/results/README.md).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.adam import adam as _adam

__all__ = ["FAST_BN_MAX_CHANNELS", "LOW_RES_AREA", "LOW_RES_MIN_WEIGHT", "ChannelsLastAdam", "FastBatchNorm2d", "FastDropout", "LowResConv2d", "LowResConvTranspose2d",
           "conv2d_dense", "conv2d_gemm", "conv_transpose2d_dense", "conv_transpose2d_gemm"]

#: A (transposed) convolution takes the GEMM route when its low-resolution side has at most this
#: many positions per image (4x4). Larger sides stay with oneDNN, which was as fast or faster.
LOW_RES_AREA = 16
#: ... and at least this many weights (measured by benchmarks/bench_gan_layers.py; benchmarks/results/README.md).
LOW_RES_MIN_WEIGHT = 1 << 22
#: :class:`FastBatchNorm2d` takes its route up to this many channels; wider layers stay with ATen
#: (as fast or faster there; benchmarks/results/README.md, "Classifier").
FAST_BN_MAX_CHANNELS = 16


def conv_transpose2d_gemm(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, stride=stride, padding=padding)`` (no bias, groups 1) as a GEMM + col2im.

    The weight is read in its own memory order (contiguous or channels_last) without a copy: at
    2048x1024x4x4 a copy is 134 MB each way, which cost more than the GEMM saved."""
    b, c_in, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    h_out, w_out = (h - 1) * stride - 2 * padding + kh, (w - 1) * stride - 2 * padding + kw
    rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c_in)  # free for channels_last x
    if weight.is_contiguous():
        # (B*H*W, Cin) @ (Cin, Cout*kh*kw): every input position's contribution to its kh x kw output patch
        cols = (rows @ weight.reshape(c_in, c_out * kh * kw)).view(b, h * w, c_out * kh * kw).transpose(1, 2)
    else:  # channels_last weight: memory order (Cin, kh, kw, Cout)
        cols = rows @ weight.permute(0, 2, 3, 1).reshape(c_in, kh * kw * c_out)
        cols = cols.view(b, h * w, kh * kw, c_out).permute(0, 3, 2, 1).reshape(b, c_out * kh * kw, h * w)
    # cols: (B, Cout*kh*kw, L), fold's layout
    return F.fold(cols, (h_out, w_out), (kh, kw), stride=stride, padding=padding)


def conv2d_gemm(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """``F.conv2d(x, weight, stride=stride, padding=padding)`` (no bias, groups 1) as im2col + a GEMM;
    the result is channels_last (a free permute of the GEMM's output). The weight is read in its
    own memory order, as in :func:`conv_transpose2d_gemm`."""
    b, _, h, w = x.shape
    c_out, c_in, kh, kw = weight.shape
    h_out, w_out = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (B, Cin*kh*kw, L)
    n = b * h_out * w_out
    if weight.is_contiguous():
        out = cols.transpose(1, 2).reshape(n, c_in * kh * kw) @ weight.reshape(c_out, c_in * kh * kw).t()
    else:  # channels_last weight: memory order (Cout, kh, kw, Cin)
        rows = cols.view(b, c_in, kh * kw, h_out * w_out).permute(0, 3, 2, 1).reshape(n, kh * kw * c_in)
        out = rows @ weight.permute(0, 2, 3, 1).reshape(c_out, kh * kw * c_in).t()
    return out.view(b, h_out, w_out, c_out).permute(0, 3, 1, 2)


def _fp32_under_autocast(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Under CPU autocast: the input cast to the (float32 master) weight's dtype, and True (switch autocast off)."""
    if torch.is_autocast_enabled("cpu"):
        return x.to(weight.dtype), True
    return x, False


def conv_transpose2d_dense(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight)`` (no bias, groups 1, no padding) for a 1x1 input: one matmul
    ``(B, Cin) @ (Cin, Cout*kh*kw)``. Channels_last output for a channels_last weight (its memory
    order is (Cin, kh, kw, Cout), read without a copy). Float32 under CPU autocast (module docstring)."""
    b, c_in = x.shape[:2]
    _, c_out, kh, kw = weight.shape
    x, off = _fp32_under_autocast(x, weight)
    with torch.autocast("cpu", enabled=False) if off else nullcontext():
        rows = x.reshape(b, c_in)
        if weight.is_contiguous():
            return (rows @ weight.reshape(c_in, c_out * kh * kw)).view(b, c_out, kh, kw)
        return (rows @ weight.permute(0, 2, 3, 1).reshape(c_in, kh * kw * c_out)).view(b, kh, kw, c_out).permute(0, 3, 1, 2)


def conv2d_dense(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, weight)`` (no bias, groups 1, no padding) for an input the size of the kernel
    (a 1x1 output): one matmul ``(B, Cin*kh*kw) @ (Cin*kh*kw, Cout)``, reading x in its own memory
    order (channels_last: (kh, kw, Cin) per image). Float32 under CPU autocast (module docstring)."""
    b = x.shape[0]
    c_out, c_in, kh, kw = weight.shape
    x, off = _fp32_under_autocast(x, weight)
    with torch.autocast("cpu", enabled=False) if off else nullcontext():
        if x.is_contiguous():
            out = x.reshape(b, c_in * kh * kw) @ weight.reshape(c_out, c_in * kh * kw).t()
        else:  # channels_last x
            out = x.permute(0, 2, 3, 1).reshape(b, kh * kw * c_in) @ weight.permute(0, 2, 3, 1).reshape(c_out, kh * kw * c_in).t()
        return out.view(b, c_out, 1, 1)


def _training_on_cpu(module: nn.Module, x: torch.Tensor) -> bool:
    return module.training and x.device.type == "cpu" and torch.is_grad_enabled()


def _gemm_route(module: nn.Module, x: torch.Tensor) -> bool:
    return _training_on_cpu(module, x) and module.weight.numel() >= LOW_RES_MIN_WEIGHT  # type: ignore[operator]


def _plain(conv: nn.Module) -> bool:
    return conv.bias is None and conv.groups == 1 and conv.dilation == (1, 1) and conv.padding_mode == "zeros"


class LowResConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that trains through one GEMM on the CPU when its *input* is <= 4x4
    (a plain matmul for a 1x1 input without padding)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if (output_size is None and x.dim() == 4 and x.shape[-2:] == (1, 1) and self.padding == (0, 0)
                and self.output_padding == (0, 0) and _plain(self) and _training_on_cpu(self, x)):
            return conv_transpose2d_dense(x, self.weight)
        if (output_size is None and _gemm_route(self, x) and _plain(self) and self.output_padding == (0, 0)
                and x.shape[-2] * x.shape[-1] <= LOW_RES_AREA and self.stride[0] == self.stride[1] and self.padding[0] == self.padding[1]):
            return conv_transpose2d_gemm(x, self.weight, self.stride[0], cast(int, self.padding[0]))  # ints: no string padding here
        return super().forward(x, output_size)


class LowResConv2d(nn.Conv2d):
    """``nn.Conv2d`` that trains through im2col + one GEMM on the CPU when its *output* is <= 4x4
    (a plain matmul when the input is the kernel's size and there is no padding)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dim() == 4 and x.shape[-2:] == self.kernel_size and self.padding == (0, 0) and self.stride == (1, 1)
                and _plain(self) and _training_on_cpu(self, x)):
            return conv2d_dense(x, self.weight)
        if _gemm_route(self, x) and _plain(self) and isinstance(self.padding, tuple) and self.stride[0] == self.stride[1] \
                and self.padding[0] == self.padding[1]:
            s, p = self.stride[0], self.padding[0]
            h_out = (x.shape[-2] + 2 * p - self.kernel_size[0]) // s + 1
            w_out = (x.shape[-1] + 2 * p - self.kernel_size[1]) // s + 1
            if h_out * w_out <= LOW_RES_AREA:
                return conv2d_gemm(x, self.weight, s, p)
        return super().forward(x)


def _keep_mask(n: int, p: float, dtype: torch.dtype) -> torch.Tensor:
    """A flat (n,) tensor of ``dtype`` holding 1 (keep, probability 1 - p) or 0, from the torch CPU generator.

    ``random_()`` on int32 gives 31 uniform bits (the sign bit is 0): p on the 2**-7 grid (the paper's
    0.25) reads the low 7 bits of each of its 4 bytes, p on the 2**-15 grid the low 15 bits of each
    half, any other p the whole word (keep rate within 2**-32 of 1 - p). The comparison writes the
    0/1 mask in x's dtype, so the multiplies below need no bool -> dtype cast."""
    if (p * 128).is_integer():
        bits = torch.empty((n + 3) // 4, dtype=torch.int32).random_().view(torch.uint8)[:n].bitwise_and_(0x7F)
        threshold = round(p * 128)
    elif (p * 32768).is_integer():
        bits = torch.empty((n + 1) // 2, dtype=torch.int32).random_().view(torch.int16)[:n].bitwise_and_(0x7FFF)
        threshold = round(p * 32768)
    else:
        bits = torch.empty(n, dtype=torch.int32).random_()
        threshold = round(p * 2**31)
    return torch.ge(bits, threshold, out=torch.empty(n, dtype=dtype))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU (see the module docstring); identical elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return F.dropout(x, self.p, self.training, self.inplace)
        if self.p == 1.0:
            return x * 0.0
        keep = _keep_mask(x.numel(), self.p, x.dtype)
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            b, c, h, w = x.shape
            keep = keep.view(b, h, w, c).permute(0, 3, 1, 2)  # the mask in x's memory order
        else:
            keep = keep.view(x.shape)
        return _KeepScale.apply(x, keep, 1.0 / (1.0 - self.p))


class _KeepScale(torch.autograd.Function):
    """``x * keep * scale`` for a 0/1 mask ``keep`` in x's dtype, saved for the backward. ``x * keep``
    measured 2-3x faster than ``where(bool_keep, x, 0)`` at demo sizes, and a mask already in x's
    dtype saves the bool -> dtype cast ``mul`` makes of a bool mask, twice per layer
    (benchmarks/results/README.md). The product is exact (x or 0), then scaled once, as ``F.dropout``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.mul(x, keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep).mul_(ctx.scale), None, None


class FastBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training forward on a channels_last CPU tensor of at most
    :data:`FAST_BN_MAX_CHANNELS` channels runs through :class:`_RowsBatchNorm` (same statistics,
    same running-stat update, same gradients to float rounding); every other case is the stock layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.track_running_stats and self.affine and self.running_mean is not None
                and x.device.type == "cpu" and x.dim() == 4 and x.dtype in (torch.float32, torch.bfloat16)
                and self.num_features <= FAST_BN_MAX_CHANNELS and x.shape[0] * x.shape[2] * x.shape[3] > 1
                and x.is_contiguous(memory_format=torch.channels_last) and not torch.jit.is_scripting()):
            return super().forward(x)
        # as nn.BatchNorm2d: count the batch, momentum None = cumulative average
        assert self.num_batches_tracked is not None  # track_running_stats
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return cast(torch.Tensor, _RowsBatchNorm.apply(x, self.weight, self.bias, self.running_mean, self.running_var, factor, self.eps))


class _RowsBatchNorm(torch.autograd.Function):
    """Training-mode BatchNorm of a channels_last (B, C, H, W) tensor, computed on its memory viewed
    as (B*H, W*C) rows: per-channel vectors are tiled W times along a row, so every op runs over
    wide contiguous rows instead of C-wide pixels. Statistics in float32 (two passes: mean, then
    the mean squared deviation); bfloat16 in, bfloat16 out, as ATen's mixed-precision BatchNorm."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
                running_var: torch.Tensor, momentum: float, eps: float) -> torch.Tensor:
        b, c, h, w = x.shape
        n = b * h * w
        rows = x.permute(0, 2, 3, 1).reshape(b * h, w * c)  # a view: channels_last memory order
        rows32 = rows.float()  # no copy for float32
        mean = rows32.sum(0).view(w, c).sum(0).div_(n)  # (C,)
        centred = rows32 - mean.repeat(w)  # (B*H, W*C), kept for the backward pass
        # the result is a fresh channels_last tensor, written through its (B*H, W*C) view: returning a
        # view would forbid the in-place ReLU that usually follows a BatchNorm
        result = torch.empty((b, c, h, w), dtype=x.dtype, memory_format=torch.channels_last)
        out = result.permute(0, 2, 3, 1).view(b * h, w * c)
        sq = out if out.dtype == torch.float32 else torch.empty_like(centred)  # reuse the output buffer
        var = torch.mul(centred, centred, out=sq).sum(0).view(w, c).sum(0).div_(n)  # biased, as the normalisation
        invstd = var.add(eps).rsqrt_()
        torch.addcmul(bias.float().repeat(w), centred, (weight.float() * invstd).repeat(w), out=out)
        with torch.no_grad():  # running statistics as ATen: unbiased variance, momentum-weighted
            running_mean.mul_(1.0 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1.0 - momentum).add_(var * (n / (n - 1)), alpha=momentum)
        ctx.save_for_backward(centred, invstd, weight)
        ctx.shape = (b, c, h, w)
        return result  # (B, C, H, W), channels_last

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        centred, invstd, weight = ctx.saved_tensors
        b, c, h, w = ctx.shape
        n = b * h * w
        g = grad.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(b * h, w * c)
        g32 = g.float()
        sum_g = g32.sum(0).view(w, c).sum(0)  # = grad of bias
        buf = centred * g32
        dot = buf.sum(0).view(w, c).sum(0)  # sum of (x - mean) * grad; grad of weight = dot * invstd
        grad_x = None
        if ctx.needs_input_grad[0]:
            # (grad - mean(grad) - (x - mean) * dot * invstd^2 / n) * invstd * weight
            a = weight.float() * invstd
            k = dot * invstd * invstd / n
            torch.addcmul((-a * sum_g / n).repeat(w), g32, a.repeat(w), out=buf)
            out = buf if g.dtype == torch.float32 else torch.empty_like(g)
            torch.addcmul(buf, centred, (-a * k).repeat(w), out=out)
            grad_x = out.view(b, h, w, c).permute(0, 3, 1, 2)
        return (grad_x, dot * invstd if ctx.needs_input_grad[1] else None, sum_g if ctx.needs_input_grad[2] else None,
                None, None, None, None)


def _nhwc_view(t: torch.Tensor) -> torch.Tensor:
    """A 4-D channels_last tensor as its contiguous (N, H, W, C) view of the same storage; others as they are."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1)
    return t


class ChannelsLastAdam(torch.optim.Adam):
    """``torch.optim.Adam`` that gives its (fused) kernel contiguous views of channels_last tensors
    (module docstring). Adam is elementwise, so any layout shared by a parameter, its gradient and
    its two moments gives the same numbers. A gradient in another layout than its parameter is
    first copied into the parameter's layout (autograd's layout contract normally gives them the
    same one; stock fused Adam would pair such a gradient's elements with the wrong weights)."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]  # torch declares overloads for the closure
        """One Adam step, as ``torch.optim.Adam.step``."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            exp_avgs: list[torch.Tensor] = []
            exp_avg_sqs: list[torch.Tensor] = []
            max_exp_avg_sqs: list[torch.Tensor] = []
            state_steps: list[torch.Tensor] = []
            has_complex = self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps)
            for i, p in enumerate(params):
                if _nhwc_view(p) is not p and grads[i].stride() != p.stride():
                    grads[i] = grads[i].contiguous(memory_format=torch.channels_last)
            beta1, beta2 = group["betas"]
            _adam(
                [_nhwc_view(t) for t in params], [_nhwc_view(t) for t in grads], [_nhwc_view(t) for t in exp_avgs],
                [_nhwc_view(t) for t in exp_avg_sqs], [_nhwc_view(t) for t in max_exp_avg_sqs], state_steps,
                amsgrad=group["amsgrad"], has_complex=has_complex, beta1=beta1, beta2=beta2, lr=group["lr"],
                weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"], foreach=group["foreach"],
                capturable=group["capturable"], differentiable=group["differentiable"], fused=group["fused"],
                grad_scale=getattr(self, "grad_scale", None), found_inf=getattr(self, "found_inf", None),
                decoupled_weight_decay=group["decoupled_weight_decay"],
            )
        return loss
