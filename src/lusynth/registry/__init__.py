"""The MLflow model registry of lusynth's exported models, split on the pure / I-O seam.

- :mod:`.gate`: the promotion gate (nominee, champion / challenger / candidate), pure;
- :mod:`.cards`: the model cards of classifier and generator versions, pure;
- :mod:`.client`: every MLflow registry call (register versions, aliases, tags, list, download);
- :mod:`.review`: the reviewer's approve / reject of a version (moves ``@champion``, audit trail as tags);
- :mod:`.resolve`: serving's ``models:/NAME@ALIAS`` -> local ONNX file with its expected sha256.

The export stage that fills the registry is :mod:`lusynth.export.stage`; the ``lusynth registry
show`` table is in :mod:`lusynth.cli.registry`. Importing this package does not import mlflow.
"""

from lusynth.registry.cards import classifier_model_card, generator_model_card
from lusynth.registry.client import (
    ONNX_FILE,
    PIP_REQUIREMENTS,
    TAG,
    RegisteredVersion,
    RegistryError,
    VersionSummary,
    current_champion,
    download_onnx,
    find_version,
    list_versions,
    register_classifier,
    register_generator,
)
from lusynth.registry.gate import (
    CANDIDATE,
    CHALLENGER,
    CHAMPION,
    DEFAULT_CLASSIFIER_MODEL,
    DEFAULT_GENERATOR_PREFIX,
    INELIGIBLE,
    NON_INFERIORITY_MARGIN,
    NOT_NOMINATED,
    RULE,
    AUCEstimate,
    ClassifierCandidate,
    GateDecision,
    RegistryNames,
    best_per_arm,
    nominate,
    promotion_decision,
)
from lusynth.registry.resolve import ResolvedModel, resolve_model
from lusynth.registry.review import ReviewEvent, approve, registry_json, reject

__all__ = [
    "CANDIDATE",
    "CHALLENGER",
    "CHAMPION",
    "INELIGIBLE",
    "NOT_NOMINATED",
    "DEFAULT_CLASSIFIER_MODEL",
    "DEFAULT_GENERATOR_PREFIX",
    "NON_INFERIORITY_MARGIN",
    "ONNX_FILE",
    "PIP_REQUIREMENTS",
    "RULE",
    "TAG",
    "AUCEstimate",
    "ClassifierCandidate",
    "GateDecision",
    "RegisteredVersion",
    "RegistryError",
    "RegistryNames",
    "ResolvedModel",
    "ReviewEvent",
    "VersionSummary",
    "approve",
    "best_per_arm",
    "classifier_model_card",
    "current_champion",
    "download_onnx",
    "find_version",
    "generator_model_card",
    "list_versions",
    "nominate",
    "promotion_decision",
    "registry_json",
    "reject",
    "register_classifier",
    "register_generator",
    "resolve_model",
]
