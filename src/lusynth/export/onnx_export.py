"""``lusynth export``: the trained classifier and generators (either family) as self-contained ONNX models.

The classifier graph takes what a scanner gives -- raw uint8 grey frames ``frames`` (N, S, S) at
the trained size -- and does the training-time preprocessing itself (x / 255, then per-image
standardisation ``(x - mean) / (std + 1e-6)`` with the population std, exactly
:func:`lusynth.classifier.augment.to_float` + :func:`~lusynth.classifier.augment.standardize`),
then returns softmax probabilities ``probabilities`` (N, n_classes). A generator graph maps
latent vectors ``z`` (N, nz) to uint8 frames ``frames`` (N, S, S) (tanh output mapped to 0..255
and rounded, as :func:`lusynth.gan.step.sample_frames` does). The batch axis is dynamic.

Metadata (``metadata_props``, read back with :func:`read_metadata`): kind, a generator's family
and architecture (``lusynth.generator_family``, ``lusynth.architecture``), classes, positive
class, image size, preprocessing, operating threshold, training data digest(s), arm, fraction,
seed, validation AUC, lusynth version, exporter and opset.

Every export is checked (:func:`check_parity`): onnxruntime (CPU) against PyTorch eager on a fixed
batch. Tolerances, documented and enforced:

- classifier: max |p_ort - p_torch| <= ``CLASSIFIER_TOLERANCE`` = 1e-4 on probabilities (measured
  differences are ~1e-7; 1e-4 is far below anything that moves a decision at a threshold);
- generator: max |frame_ort - frame_torch| <= ``GENERATOR_TOLERANCE`` = 1 grey level (a float
  difference of ~1e-6 can flip the rounding of a value at .5) and at most
  ``GENERATOR_MAX_FLIPPED`` = 0.1 % of pixels differing at all.

A failed check raises :class:`ExportParityError` and leaves no file at ``out_path``.

Exporter: the dynamo exporter (``torch.onnx.export(dynamo=True)``) is tried first; if it fails,
the TorchScript exporter (``dynamo=False``) is used, and ``ExportResult.exporter`` says which.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lusynth.atomic import atomic_write_bytes
from lusynth.classifier.augment import STD_EPS  # the one eps training and serving share
from lusynth.errors import LusynthError
from lusynth.tempspace import temp_dir
from lusynth.util import file_sha256  # re-exported: serving and older callers import it from here

__all__ = [
    "CLASSIFIER_TOLERANCE",
    "GENERATOR_MAX_FLIPPED",
    "GENERATOR_TOLERANCE",
    "ClassifierForServing",
    "ExportError",
    "ExportParityError",
    "ExportResult",
    "GeneratorForServing",
    "check_parity",
    "export_classifier",
    "export_generator",
    "file_sha256",
    "ort_session",
    "read_metadata",
]

CLASSIFIER_TOLERANCE = 1e-4  # max |probability difference|, onnxruntime vs PyTorch
GENERATOR_TOLERANCE = 1  # max |grey-level difference| of uint8 frames
GENERATOR_MAX_FLIPPED = 1e-3  # share of pixels allowed to differ (rounding at .5)
MIN_OPSET = 17
PARITY_BATCH = 8
PARITY_SEED = 20231006


class ExportError(LusynthError):
    """A model could not be exported."""


class ExportParityError(ExportError):
    """onnxruntime's output differs from PyTorch's by more than the tolerance."""

    def __init__(self, what: str, max_diff: float, tolerance: float, detail: str = "") -> None:
        super().__init__(
            f"{what}: ONNX export failed the parity check: max |onnxruntime - pytorch| = {max_diff:.3g} > tolerance "
            f"{tolerance:g}{'; ' + detail if detail else ''}. The exported graph does not compute what the model does; "
            "try another --opset or report the model config"
        )
        self.max_diff = max_diff
        self.tolerance = tolerance


class ClassifierForServing(nn.Module):
    """uint8 frames (N, S, S) -> class probabilities (N, n_classes), preprocessing included."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.to(torch.float32).unsqueeze(1) / 255.0  # (N, 1, S, S) in [0, 1]: augment.to_float
        x = x - x[:, :, :1, :1]  # shift by the first pixel, as augment.standardize: a flat frame is exactly 0
        mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
        # population std written out (mean of squares): one formula every exporter maps the same way
        std = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True).sqrt()  # = std(unbiased=False)
        x = (x - mean) / (std + STD_EPS)  # augment.standardize
        return torch.softmax(self.model(x), dim=1)  # (N, n_classes)


class GeneratorForServing(nn.Module):
    """Latent vectors z (N, nz) -> uint8 frames (N, S, S)."""

    def __init__(self, generator: nn.Module, nz: int) -> None:
        super().__init__()
        self.generator = generator
        self.nz = nz

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.generator(z.reshape(-1, self.nz, 1, 1))  # (N, 1, S, S) in [-1, 1]
        x = ((x[:, 0] + 1.0) * 127.5).round().clamp(0.0, 255.0)  # (N, S, S): gan.step._to_u8
        return x.to(torch.uint8)


@dataclass
class ExportResult:
    """One exported model and the evidence that it computes what the PyTorch model computes."""

    path: Path
    kind: str  # "classifier" | "generator"
    opset: int
    exporter: str  # "dynamo" | "torchscript"
    input_name: str
    output_name: str
    max_abs_diff: float
    tolerance: float
    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def ort_session(path_or_bytes: str | os.PathLike[str] | bytes) -> Any:
    """An onnxruntime CPU session with threads from the CPU quota."""
    import onnxruntime as ort

    from lusynth.runtime import onnxruntime_session_options

    src = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    return ort.InferenceSession(src, sess_options=onnxruntime_session_options(), providers=["CPUExecutionProvider"])


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading the weights)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _export_bytes(module: nn.Module, example: torch.Tensor, *, input_name: str, output_name: str, opset: int,
                  scratch: Path | None = None, prefer_dynamo: bool = True) -> tuple[bytes, str, list[str]]:
    """Export to ONNX bytes with a dynamic batch axis; dynamo first, TorchScript as the fallback.
    The exporters write into a temporary directory in ``scratch`` (the exports pass the output's
    folder; None: the system's temporary folder, still marked and cleaned by lusynth.tempspace)."""
    notes: list[str] = []
    order = ["dynamo", "torchscript"] if prefer_dynamo else ["torchscript"]
    with temp_dir(scratch if scratch is not None else tempfile.gettempdir()) as tmp:
        for exporter in order:
            out = Path(tmp) / f"{exporter}.onnx"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if exporter == "dynamo":
                        batch = torch.export.Dim("batch", min=1, max=1 << 16)
                        torch.onnx.export(module, (example,), str(out), input_names=[input_name], output_names=[output_name],
                                          opset_version=opset, dynamo=True, external_data=False,
                                          dynamic_shapes=({0: batch},),
                                          verbose=False)
                    else:
                        torch.onnx.export(module, (example,), str(out), input_names=[input_name], output_names=[output_name],
                                          opset_version=opset, dynamo=False,
                                          dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
                return out.read_bytes(), exporter, notes
            except Exception as exc:  # an exporter that cannot trace this graph: try the next one
                notes.append(f"{exporter} exporter failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
    raise ExportError("ONNX export failed with every exporter: " + " | ".join(notes))


def _with_metadata(onnx_bytes: bytes, metadata: dict[str, str], *, doc: str) -> bytes:
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    del model.metadata_props[:]
    for k, v in sorted(metadata.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    model.doc_string = doc
    model.producer_name = "lusynth"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def check_parity(session: Any, module: nn.Module, batch: torch.Tensor, *, kind: str) -> float:
    """Run ``batch`` through onnxruntime and PyTorch; raise :class:`ExportParityError` beyond tolerance.

    Returns the max absolute difference. Also checks a batch of one (the dynamic axis).
    """
    module.eval()
    name = session.get_inputs()[0].name
    worst = 0.0
    for sub in (batch, batch[:1]):
        with torch.no_grad():
            ref = module(sub).numpy()
        got = session.run(None, {name: sub.numpy()})[0]
        if got.shape != ref.shape:
            raise ExportParityError(kind, float("inf"), 0.0, f"output shape {got.shape} != PyTorch's {ref.shape}")
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
        if kind == "classifier":
            if not np.all(np.isfinite(got)) or worst > CLASSIFIER_TOLERANCE:
                raise ExportParityError(kind, worst, CLASSIFIER_TOLERANCE, "on probabilities")
        else:
            flipped = float((diff > 0).mean()) if diff.size else 0.0
            if worst > GENERATOR_TOLERANCE or flipped > GENERATOR_MAX_FLIPPED:
                raise ExportParityError(kind, worst, GENERATOR_TOLERANCE,
                                        f"grey levels; {flipped:.2%} of pixels differ (allowed {GENERATOR_MAX_FLIPPED:.1%})")
    return worst


def parity_frames(image_size: int, n: int = PARITY_BATCH) -> torch.Tensor:
    """A fixed uint8 batch: textured random frames, a flat frame (std 0) and a full-range ramp."""
    rng = np.random.default_rng(PARITY_SEED)
    frames = rng.integers(0, 256, size=(n, image_size, image_size), dtype=np.uint8)
    # smooth frames look more like ultrasound than white noise; the flat frame hits std = 0
    smooth = np.cumsum(rng.normal(0, 4, size=(n, image_size, image_size)), axis=2)
    frames[: n // 2] = np.clip(smooth[: n // 2] + 128, 0, 255).astype(np.uint8)
    frames[-1] = 77
    frames[-2] = np.linspace(0, 255, image_size * image_size).reshape(image_size, image_size).astype(np.uint8)
    return torch.from_numpy(frames)


def _write_checked(out_path: Path, onnx_bytes: bytes, module: nn.Module, batch: torch.Tensor, kind: str) -> tuple[float, str]:
    session = ort_session(onnx_bytes)
    max_diff = check_parity(session, module, batch, kind=kind)
    atomic_write_bytes(out_path, onnx_bytes)  # only a model that passed the check is written
    return max_diff, hashlib.sha256(onnx_bytes).hexdigest()


def _check_opset(opset: int) -> None:
    if opset < MIN_OPSET:
        raise ExportError(f"opset={opset}: lusynth exports opset >= {MIN_OPSET}")


def export_classifier(classifier_dir: str | os.PathLike[str], out_path: str | os.PathLike[str], *, opset: int = 18,
                      prefer_dynamo: bool = True) -> ExportResult:
    """Export a ``train-classifier`` directory to a self-contained ONNX classifier (see module doc)."""
    from lusynth import __version__
    from lusynth.classifier.train import PREPROCESSING, load_classifier

    _check_opset(opset)
    t0 = time.perf_counter()
    clf = load_classifier(classifier_dir)
    model = clf.model.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]  # torch stubs lack memory_format
    wrapped = ClassifierForServing(model).eval()
    s = clf.config.image_size
    batch = parity_frames(s)
    onnx_bytes, exporter, notes = _export_bytes(wrapped, batch, input_name="frames", output_name="probabilities",
                                                opset=opset, scratch=Path(out_path).parent, prefer_dynamo=prefer_dynamo)
    data = clf.meta.get("data") or {}
    metadata = {
        "lusynth.kind": "classifier",
        "lusynth.version": __version__,
        "lusynth.classes": json.dumps(list(clf.classes)),
        "lusynth.positive_class": clf.positive_class,
        "lusynth.image_size": str(s),
        "lusynth.input": f"frames: uint8 (N, {s}, {s}) grey, raw pixel values",
        "lusynth.output": f"probabilities: float32 (N, {len(clf.classes)}), softmax over lusynth.classes",
        "lusynth.preprocessing": json.dumps({**PREPROCESSING, "in_graph": True}, sort_keys=True),
        "lusynth.threshold": repr(float(clf.threshold)),
        "lusynth.threshold_rule": str(clf.meta.get("threshold_rule", "")),
        "lusynth.arm": clf.arm,
        "lusynth.fraction": repr(clf.fraction),
        "lusynth.seed": str(clf.seed),
        "lusynth.val_auc": repr(float(clf.meta.get("val_auc", float("nan")))),
        "lusynth.data_digest": str(data.get("real_digest", "")),
        "lusynth.store_digests": json.dumps(data.get("store_digests", {}), sort_keys=True),
        "lusynth.mlflow_run_id": str(clf.meta.get("mlflow_run_id") or ""),
        "lusynth.exporter": exporter,
        "lusynth.opset": str(opset),
        "lusynth.parity_tolerance": repr(CLASSIFIER_TOLERANCE),
    }
    onnx_bytes = _with_metadata(onnx_bytes, metadata, doc=f"lusynth LUS frame classifier ({clf.arm}, fraction {clf.fraction:g})")
    out_path = Path(out_path)
    max_diff, sha = _write_checked(out_path, onnx_bytes, wrapped, batch, "classifier")
    return ExportResult(path=out_path, kind="classifier", opset=opset, exporter=exporter, input_name="frames",
                        output_name="probabilities", max_abs_diff=max_diff, tolerance=CLASSIFIER_TOLERANCE, sha256=sha,
                        metadata=metadata, seconds=time.perf_counter() - t0, notes=notes)


def export_generator(gan_dir: str | os.PathLike[str], out_path: str | os.PathLike[str], *, opset: int = 18,
                     which: str = "chosen", prefer_dynamo: bool = True) -> ExportResult:
    """Export a ``train-gan`` directory's chosen generator: z (N, nz) -> uint8 frames (N, S, S)."""
    from lusynth import __version__
    from lusynth.gan.checkpoint import load_generator
    from lusynth.gan.families import architecture, family_of
    from lusynth.gan.run import GanRun

    _check_opset(opset)
    t0 = time.perf_counter()
    gan_dir = Path(gan_dir)
    g, cfg = load_generator(gan_dir, which)
    family = family_of(cfg)
    wrapped = GeneratorForServing(g.eval(), cfg.nz).eval()
    z = torch.randn(PARITY_BATCH, cfg.nz, generator=torch.Generator().manual_seed(PARITY_SEED))
    onnx_bytes, exporter, notes = _export_bytes(wrapped, z, input_name="z", output_name="frames", opset=opset,
                                                scratch=Path(out_path).parent, prefer_dynamo=prefer_dynamo)
    run = GanRun.load(gan_dir) if GanRun.exists(gan_dir) else None  # an unfinished run exports without it
    chosen = (run.chosen if run is not None else None) or {}
    metadata = {
        "lusynth.kind": "generator",
        "lusynth.generator_family": family,
        "lusynth.architecture": architecture(cfg),
        "lusynth.version": __version__,
        "lusynth.label": run.label if run is not None else "",
        "lusynth.fraction": repr(run.fraction if run is not None else float("nan")),
        "lusynth.image_size": str(cfg.image_size),
        "lusynth.nz": str(cfg.nz),
        "lusynth.input": f"z: float32 (N, {cfg.nz}), standard normal latent vectors",
        "lusynth.output": f"frames: uint8 (N, {cfg.image_size}, {cfg.image_size}) grey",
        "lusynth.postprocessing": "round((tanh_output + 1) * 127.5), clipped to 0..255",
        "lusynth.data_digest": run.frames_digest if run is not None else "",
        "lusynth.checkpoint": str(chosen.get("checkpoint", which)),
        "lusynth.chosen_step": str(chosen.get("step", "")),
        "lusynth.mlflow_run_id": (run.run_id if run is not None else None) or "",
        "lusynth.exporter": exporter,
        "lusynth.opset": str(opset),
        "lusynth.parity_tolerance": f"{GENERATOR_TOLERANCE} grey level, <= {GENERATOR_MAX_FLIPPED:.1%} of pixels",
    }
    onnx_bytes = _with_metadata(onnx_bytes, metadata, doc=f"lusynth {family} generator for class {metadata['lusynth.label']!r}")
    out_path = Path(out_path)
    max_diff, sha = _write_checked(out_path, onnx_bytes, wrapped, z, "generator")
    return ExportResult(path=out_path, kind="generator", opset=opset, exporter=exporter, input_name="z", output_name="frames",
                        max_abs_diff=max_diff, tolerance=float(GENERATOR_TOLERANCE), sha256=sha, metadata=metadata,
                        seconds=time.perf_counter() - t0, notes=notes)
