"""The fidelity embedding (lusynth.models.embedding): the same seed and data give the same weights
and features in every process, also on two threads."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch

from lusynth.models.embedding import EmbeddingConfig, embed, fit_embedding
from lusynth.runtime import MKL_VML_OPS, configure_threads, warm_mkl_vml

# One fresh process: threads from LUSYNTH_THREADS (as configure_threads sets them, but without its
# MKL warm-up, so that fit_embedding's own guarantee is what is tested), a fit on fixed frames, then
# the digest of the state dict (every tensor's bytes in order) and of the features of fixed frames.
_FIT_AND_DIGEST = """
import hashlib
import numpy as np
import torch
from lusynth.models.embedding import EmbeddingConfig, embed, fit_embedding
from lusynth.runtime import cpu_quota
torch.set_num_threads(cpu_quota())
rng = np.random.default_rng(0)
frames = rng.integers(0, 256, (64, 64, 64), dtype=np.uint8)
net = fit_embedding(frames, np.arange(64) % 2, cfg=EmbeddingConfig(epochs=4), seed=0)
weights = hashlib.sha256()
for tensor in net.state_dict().values():
    weights.update(tensor.detach().contiguous().numpy().tobytes())
features = embed(net, rng.integers(0, 256, (32, 64, 64), dtype=np.uint8))
print(torch.get_num_threads(), weights.hexdigest(), hashlib.sha256(features.tobytes()).hexdigest())
"""


def test_fit_embedding_is_identical_across_processes_on_two_threads() -> None:
    # Without the MKL warm-up, 1 in 4 to 1 in 6 processes differed (pytorch/pytorch#188792: the
    # first two-thread tanh/sqrt of a process could run a low-accuracy kernel) and this test failed
    # in 2 of 3 runs; with it, 0 of 12 processes. It is a race, so a loaded machine hides it more
    # often; the processes run one after another, as it needs both threads of a process on a core.
    env = {**os.environ, "LUSYNTH_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    outputs = [subprocess.run([sys.executable, "-c", _FIT_AND_DIGEST], env=env, capture_output=True, text=True,
                              check=True, timeout=600).stdout.split() for _ in range(3)]
    assert all(out[0] == "2" for out in outputs), outputs  # really two threads
    assert len({out[1] for out in outputs}) == 1, f"weights differ between processes: {outputs}"
    assert len({out[2] for out in outputs}) == 1, f"features differ between processes: {outputs}"


def test_fit_embedding_restores_the_callers_rng_and_repeats_in_process() -> None:
    rng = np.random.default_rng(1)
    frames, labels = rng.integers(0, 256, (16, 32, 32), dtype=np.uint8), np.arange(16) % 2
    cfg = EmbeddingConfig(input_size=32, epochs=1, batch_size=8)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = embed(fit_embedding(frames, labels, cfg=cfg, seed=3), frames)
    assert torch.equal(torch.rand(3), expected)  # the global stream is untouched
    np.testing.assert_array_equal(embed(fit_embedding(frames, labels, cfg=cfg, seed=3), frames), first)


def test_configure_threads_resolves_the_mkl_dispatch_first() -> None:
    warm_mkl_vml.cache_clear()
    configure_threads(torch.get_num_threads())
    assert warm_mkl_vml.cache_info().currsize == 1
    assert {"tanh", "sqrt", "exp", "log"} <= set(MKL_VML_OPS)
    for name in MKL_VML_OPS:  # every name is a torch op that takes a float tensor
        assert torch.isfinite(getattr(torch, name)(torch.full((1,), 0.5))).all()
