"""ONNX export of the classifier and the generators, with parity checks (see :mod:`.onnx_export`)."""

from lusynth.export.onnx_export import (
    CLASSIFIER_TOLERANCE,
    GENERATOR_TOLERANCE,
    ClassifierForServing,
    ExportError,
    ExportParityError,
    ExportResult,
    GeneratorForServing,
    check_parity,
    export_classifier,
    export_generator,
    file_sha256,
    ort_session,
    read_metadata,
)

__all__ = [
    "CLASSIFIER_TOLERANCE",
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
