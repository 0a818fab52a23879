"""A blank (flat) frame is standardised to exactly zero in training and in the ONNX graph, so
onnxruntime and PyTorch agree on it (before, each rounded the frame's mean differently and the
difference, divided by the std epsilon, reached 1.6e-4 in probability on a trained demo classifier)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lusynth.classifier.augment import standardize, to_float
from lusynth.export.onnx_export import ClassifierForServing, _export_bytes, ort_session


class _SumOfMagnitudes(nn.Module):
    """Logits (sum |x|, 0): any residue left in a standardised flat frame moves p away from 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.abs().sum(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_standardize_maps_a_flat_frame_to_exact_zero() -> None:
    frames = torch.full((3, 64, 64), 77, dtype=torch.uint8)
    frames[1] = 200
    assert torch.count_nonzero(standardize(to_float(frames))) == 0
    ramp = torch.linspace(0, 1, 64 * 64).reshape(1, 1, 64, 64)
    z = standardize(ramp)
    assert abs(float(z.mean())) < 1e-6 and abs(float(z.std(unbiased=False)) - 1) < 5e-3  # std / (std + eps)


def test_onnx_and_torch_agree_exactly_on_a_flat_frame() -> None:
    module = ClassifierForServing(_SumOfMagnitudes()).eval()
    flat = torch.full((2, 64, 64), 77, dtype=torch.uint8)
    onnx_bytes, _, _ = _export_bytes(module, flat, input_name="frames", output_name="probabilities", opset=18)
    got = ort_session(onnx_bytes).run(None, {"frames": flat.numpy()})[0]
    with torch.no_grad():
        ref = module(flat).numpy()
    assert np.all(ref == 0.5) and np.all(got == 0.5), (ref, got)
