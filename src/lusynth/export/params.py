"""Parameters of the export stage (ONNX export, registration and the promotion gate)."""

from __future__ import annotations

from dataclasses import dataclass

from lusynth.params import check

__all__ = ["ExportParams"]


@dataclass(frozen=True)
class ExportParams:
    """Registered model names, the promotion gate's margin and the ONNX opset."""

    classifier_model: str = "lusynth-lus-classifier"  # registered model name of the classifier
    generator_prefix: str = "lusynth-lus-generator-"  # registered model name prefix of the generators (+ class)
    margin: float = 0.02  # non-inferiority margin on holdout AUC for promotion to champion
    opset: int = 18  # ONNX opset (>= 17)

    def __post_init__(self) -> None:
        check(bool(self.classifier_model), "export", "classifier_model", self.classifier_model, "must not be empty")
        check(bool(self.generator_prefix), "export", "generator_prefix", self.generator_prefix, "must not be empty")
        check(0 <= self.margin < 1, "export", "margin", self.margin, "an AUC difference in [0, 1)")
        check(self.opset >= 17, "export", "opset", self.opset, "use 17 or newer")
