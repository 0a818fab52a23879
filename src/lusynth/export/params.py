"""Parameters of the export stage (ONNX export, registration and the promotion gate)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExportParams"]


@dataclass(frozen=True)
class ExportParams:
    """Registered model names, the promotion gate's margin and the ONNX opset."""

    classifier_model: str = "lusynth-lus-classifier"  # registered model name of the classifier
    generator_prefix: str = "lusynth-lus-generator-"  # registered model name prefix of the generators (+ class)
    margin: float = 0.02  # non-inferiority margin on holdout AUC for promotion to champion
    opset: int = 18  # ONNX opset (>= 17)

    def __post_init__(self) -> None:
        if not self.classifier_model or not self.generator_prefix:
            raise ValueError("export.classifier_model and export.generator_prefix must not be empty")
        if not 0 <= self.margin < 1:
            raise ValueError(f"export.margin={self.margin!r}: an AUC difference in [0, 1)")
        if self.opset < 17:
            raise ValueError(f"export.opset={self.opset!r}: use 17 or newer")
