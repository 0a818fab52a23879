"""Training precision (``precision: auto | fp32 | bf16`` of the gan and classifier sections):
what ``auto`` resolves to, what each autocast computes in, and that a bad value is one clear line (a ValueError;
``lusynth.params.from_dict`` turns it into an InputError)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lusynth import runtime
from lusynth.classifier.params import ClassifierParams
from lusynth.gan.params import GanParams
from lusynth.runtime import autocast_for, cpu_has_native_bf16, resolve_precision


def test_native_bf16_follows_the_cpu_flags() -> None:
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_bf16"} & set(flags))


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_on_cuda_and_on_cpus_with_native_bf16(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert resolve_precision("auto", "cuda") == "bf16" and resolve_precision("auto", "cuda:1") == "bf16"
    assert resolve_precision("fp32", "cuda") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"  # forced either way
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "cpu")


def test_bf16_autocast_computes_convs_in_bf16_and_keeps_fp32_weights() -> None:
    conv = torch.nn.Conv2d(1, 4, 3)
    x = torch.randn(2, 1, 8, 8)
    with autocast_for("cpu", "bf16")():
        y = conv(x)
    with autocast_for("cpu", "fp32")():
        y32 = conv(x)
    assert y.dtype == torch.bfloat16 and y32.dtype == torch.float32 and conv.weight.dtype == torch.float32
    torch.testing.assert_close(y.float(), y32, atol=3e-2, rtol=3e-2)  # bf16: 8 bits of mantissa
    with pytest.raises(ValueError, match="resolve"):
        autocast_for("cpu", "auto")


@pytest.mark.parametrize("cls, section", [(GanParams, "gan"), (ClassifierParams, "classifier")])
def test_an_unknown_precision_names_the_section_and_the_choices(cls: type, section: str) -> None:
    with pytest.raises(ValueError, match=rf"{section}\.precision=.fp16.: choose one of auto, fp32, bf16"):
        cls(precision="fp16")
