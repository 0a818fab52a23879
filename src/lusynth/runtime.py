"""Process-level settings: CPU quota, thread counts, device choice.

On 2 cores, torch + onnxruntime + BLAS each starting a thread per *host* core oversubscribes the
machine; every entry point calls :func:`configure_threads` once.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def cpu_quota() -> int:
    """Number of CPUs this process may use: cgroup v2/v1 quota, then affinity, then ``os.cpu_count``."""
    env = os.environ.get("LUSYNTH_THREADS")
    if env:
        return max(1, int(env))
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        try:
            q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            if q > 0:
                n = min(n, max(1, q // p))
        except (OSError, ValueError):
            pass
    return max(1, n)


def configure_threads(n: int | None = None) -> int:
    """Set torch intra/inter-op threads (and BLAS env defaults) from the CPU quota, and resolve MKL's
    vector-math dispatch before any op runs on several threads (:func:`warm_mkl_vml`); return the count."""
    n = n or cpu_quota()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set once in this process
            pass
        warm_mkl_vml()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return n


#: Float unary ops that ATen computes on contiguous CPU tensors with MKL's vector math library (VML):
#: ``IMPLEMENT_VML_MKL`` in aten/src/ATen/cpu/vml.h, plus expm1/log1p that other releases routed there.
MKL_VML_OPS = ("acos", "asin", "atan", "cos", "erf", "erfc", "erfinv", "exp", "expm1", "log", "log10", "log1p",
               "log2", "sin", "sqrt", "tan", "tanh", "trunc")


@functools.cache
def warm_mkl_vml() -> None:
    """Call every MKL-VML-routed torch op once, on one float32 and one float64 element, in this thread.

    oneMKL 2024.2 (torch's CPU wheels) picks each VML function's kernel lazily on its first call.
    When that first call runs on several intra-op threads at once, one thread can run a
    low-accuracy kernel for its whole chunk of that one call (~4e-5 off for ``tanh``), although
    ATen asks for high accuracy: pytorch/pytorch#188792. Whether it happens depends on thread
    timing, so the same seeded computation gave different bits in different processes (the
    fidelity embedding's decoder ``tanh`` and Adam's ``sqrt``). One-element calls stay below
    ATen's parallel grain, so they resolve the dispatch on one thread, before any concurrent use.
    Idempotent and cheap (36 tiny ops, once per process).
    """
    import torch

    for dtype in (torch.float32, torch.float64):
        x = torch.full((1,), 0.5, dtype=dtype)  # inside every op's domain (acos, erfinv, log, ...)
        for name in MKL_VML_OPS:
            getattr(torch, name)(x)


def select_device(requested: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; an explicit request is validated."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={requested!r} requested but torch sees no CUDA device; use --device cpu")
    return requested


#: Training precisions (``GanParams.precision``, ``ClassifierParams.precision``).
PRECISIONS = ("auto", "fp32", "bf16")
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16 in ``/proc/cpuinfo``) and
    torch's oneDNN can use it. Without them oneDNN emulates bf16, which is slower than float32."""
    import torch

    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
    except OSError:  # not Linux: no way to tell cheaply, stay with float32
        return False
    return bool(flags & set(_NATIVE_BF16_FLAGS)) and torch.backends.mkldnn.is_available()


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``bf16`` on CUDA and on CPUs with native bf16, else ``fp32``; ``fp32``/``bf16`` as given."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if (device.startswith("cuda") or (device == "cpu" and cpu_has_native_bf16())) else "fp32"


def autocast_for(device: str, precision: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A factory of the autocast context for a *resolved* precision: ``bf16`` = ``torch.autocast``
    to bfloat16 on the device's type (weights, optimiser state and the ops autocast keeps in float32
    stay float32); ``fp32`` = no autocast."""
    if precision == "fp32":
        return contextlib.nullcontext
    if precision != "bf16":
        raise ValueError(f"precision={precision!r}: resolve 'auto' first (resolve_precision)")
    import torch

    kind = torch.device(device).type
    return lambda: torch.autocast(kind, dtype=torch.bfloat16)


def onnxruntime_session_options():
    """onnxruntime SessionOptions with intra-op threads from the CPU quota."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = cpu_quota()
    so.inter_op_num_threads = 1
    return so


@contextlib.contextmanager
def temporary_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for a block (subprocesses started inside inherit them), then restore."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


def _glibc() -> object | None:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both must exist (glibc)
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def retain_freed_memory() -> Iterator[bool]:
    """Within the block, glibc malloc keeps freed memory for reuse instead of returning it to the OS.

    CPU training allocates and frees the same large activation buffers every step (67 MB each at
    256x256). By default glibc serves blocks over 32 MB with ``mmap`` and returns them with
    ``munmap``, so every step page-faults (and zeroes) gigabytes afresh in the kernel.
    ``mallopt(M_MMAP_MAX, 0)`` plus a high trim threshold keeps the memory in the heap (what that
    saves: ``benchmarks/results/README.md``). On exit the glibc defaults come back and
    ``malloc_trim(0)`` returns the retained memory. Yields whether it took effect (False off
    glibc, where it does nothing).
    """
    libc = _glibc()
    if libc is None:
        yield False
        return
    libc.mallopt(_M_MMAP_MAX, 0)  # type: ignore[attr-defined]
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # type: ignore[attr-defined]
    try:
        yield True
    finally:
        for param, value in _GLIBC_DEFAULTS.items():
            libc.mallopt(param, value)  # type: ignore[attr-defined]
        libc.malloc_trim(0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RunContext:
    """How a stage runs, as opposed to what it computes: none of these change a result, so they
    are not hyperparameters, not in the profiles and not in a stage's cache key."""

    track: bool = True  # log the run to MLflow (lusynth.tracking)
    device: str | None = None  # auto | cpu | cuda[:i]; None = the stage's own default
    threads: int | None = None  # torch CPU threads; None = the stage's default, 0 = the CPU quota
    progress: bool = True  # progress bars / lines
    cache: bool = True  # restore an identical earlier output from the stage cache (lusynth.stagecache)
    force: bool = False  # let --out replace a directory no run of this stage wrote (lusynth.outputs)

    def start(self, *, device: str = "auto", threads: int | None = None) -> tuple[str, int]:
        """Set this process's torch threads (this context's, else the stage's default ``threads``;
        0 or None = the CPU quota); return (the device: this context's, else ``device``; the threads)."""
        n = configure_threads((self.threads if self.threads is not None else threads) or None)
        return select_device(self.device or device), n
