"""The MLflow model registry, I/O: registering ONNX versions with tags, model cards and aliases,
reading the current champion and the version list back, downloading a version's ONNX file.

Registered models (names configurable, :class:`~lusynth.registry.gate.RegistryNames`):

- ``lusynth-lus-classifier``: one version per exported classifier (the best by validation AUC of
  each arm in a pipeline run);
- ``lusynth-lus-generator-<class>``: one version per exported generator of that class.

Each version is logged with the ONNX flavour (``mlflow.onnx.log_model``, CPU execution provider),
a signature and an input example, and carries tags (``lusynth.*``: holdout AUC with its CI, arm,
fraction, privacy-audit result, data digest, pipeline run, ONNX sha256, gate decision) and a model
card as its description (:mod:`lusynth.registry.cards`).

Aliases (MLflow 3, no stages): the gate's decision (:mod:`lusynth.registry.gate`) becomes the
``champion`` or ``challenger`` alias of the nominee; every classifier version also becomes
``arm-<arm>`` (the latest of its arm). Decisions and reasons are tags ``lusynth.gate.decision`` /
``lusynth.gate.reason``. A generator becomes its model's ``champion`` when its privacy audit
passed, else ``challenger``.

MLflow is reached through :mod:`lusynth.tracking` (URI, reachability, retries) and this module
only; mlflow itself is imported inside the functions, so the pure modules stay light.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lusynth.errors import LusynthError
from lusynth.registry.cards import classifier_model_card, generator_model_card
from lusynth.registry.gate import (
    CANDIDATE,
    CHALLENGER,
    CHAMPION,
    NON_INFERIORITY_MARGIN,
    AUCEstimate,
    ClassifierCandidate,
    GateDecision,
    RegistryNames,
    promotion_decision,
)
from lusynth.tempspace import temp_dir
from lusynth.util import file_sha256, slugify

__all__ = [
    "ONNX_FILE",
    "PIP_REQUIREMENTS",
    "TAG",
    "RegisteredVersion",
    "RegistryError",
    "VersionSummary",
    "current_champion",
    "download_onnx",
    "find_version",
    "list_versions",
    "own_version",
    "register_classifier",
    "register_generator",
]

ONNX_FILE = "model.onnx"
TAG = "lusynth."
#: set on a version once its file is verified and its aliases are set: a retry finds it complete
COMPLETE_TAG = TAG + "registration"
PIP_REQUIREMENTS = ["onnx", "onnxruntime"]


class RegistryError(LusynthError):
    """The registry holds something unexpected, or a model cannot be resolved."""


@dataclass
class RegisteredVersion:
    """One registered model version and the gate's decision about it."""

    name: str
    version: str
    decision: str
    reason: str
    aliases: list[str]
    onnx_sha256: str
    model_uri: str


# ---------------------------------------------------------------------------------------------
# registering: log the ONNX file, create the version, set aliases


@contextlib.contextmanager
def _global_uri(client: Any) -> Iterator[None]:
    """Point MLflow's global URIs at ``client``'s store for the block.

    ``mlflow.onnx.log_model`` needs an active (fluent) run, and the SQL registry resolves a
    ``models:/m-...`` source through the *global* tracking URI (MLflow 3.17), so both must name
    the store this client talks to. What was *set* before comes back afterwards, not what
    ``get_tracking_uri()`` resolved: MLflow writes a set URI into ``MLFLOW_TRACKING_URI`` /
    ``MLFLOW_REGISTRY_URI``, so restoring the resolved default would pin it for the rest of the
    process (a later ``tracking_uri(local_dir)`` would be ignored).
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    prev_env = {k: os.environ.get(k) for k in env_names}
    prev = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client._registry_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(prev[0])  # type: ignore[arg-type]  # None unsets it (mlflow 3.17)
        registry_utils._registry_uri = prev[1]
        for k, v in prev_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _version_auc(v: Any) -> AUCEstimate | None:
    t = v.tags
    try:
        return AUCEstimate(float(t[TAG + "holdout_auc"]), float(t[TAG + "holdout_auc_lo"]), float(t[TAG + "holdout_auc_hi"]))
    except (KeyError, ValueError):
        return None


def current_champion(client: Any, name: str) -> Any | None:
    """The version behind ``name@champion``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _ensure_model(client: Any, name: str, description: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        with contextlib.suppress(MlflowException):  # created concurrently by another run
            client.create_registered_model(name, description=description)


def _log_onnx_version(client: Any, run_id: str, name: str, onnx_path: Path, input_example: Any, output_example: Any,
                      artifact_name: str, tags: Mapping[str, str], description: str) -> tuple[str, str]:
    """Log the ONNX file with the onnx flavour under ``run_id`` and register it; (version, sha256)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in pipeline logs
    import mlflow
    import onnx
    from mlflow.models import infer_signature

    sha = file_sha256(onnx_path)
    model = onnx.load(str(onnx_path))
    signature = infer_signature(input_example, output_example)
    _ensure_model(client, name, description=f"lusynth {artifact_name}: see each version's model card")
    with _global_uri(client):
        with mlflow.start_run(run_id=run_id):
            info = mlflow.onnx.log_model(model, name=artifact_name, signature=signature, input_example=input_example,
                                         onnx_execution_providers=["CPUExecutionProvider"], pip_requirements=PIP_REQUIREMENTS,
                                         save_as_external_data=False)
        mv = client.create_model_version(name, source=info.model_uri, run_id=run_id, tags={**tags, TAG + "onnx_sha256": sha},
                                         description=description, model_id=getattr(info, "model_id", None))
        # the registry must hold exactly the file that passed the parity check
        with temp_dir(onnx_path.parent) as tmp:  # beside the export, not in /tmp
            got = _download_onnx(f"models:/{name}/{mv.version}", Path(tmp))
            if file_sha256(got) != sha:
                raise RegistryError(f"{name} v{mv.version}: the logged model.onnx differs from {onnx_path} (sha256); "
                                    "the artifact store changed the file")
    return str(mv.version), sha


def own_version(client: Any, name: str, sha256: str, pipeline_run_id: str | None) -> Any | None:
    """The version of ``name`` that pipeline run ``pipeline_run_id`` already registered for the ONNX
    file with ``sha256`` (its earlier attempt, when the export task is retried), or None.

    Only within one pipeline run: outside one, the same file registered again is a new decision
    (its aliases may have moved since), so it gets a new version."""
    from mlflow.exceptions import MlflowException

    if not pipeline_run_id:
        return None
    try:
        found = client.search_model_versions(f"name='{name}' and tags.`{TAG}onnx_sha256` = '{sha256}'", max_results=1000)
    except MlflowException:  # no such registered model yet
        return None
    mine = [v for v in found if v.tags.get(TAG + "pipeline_run") == pipeline_run_id]
    return min(mine, key=lambda v: int(v.version)) if mine else None


def _resume(client: Any, v: Any, onnx_path: Path) -> RegisteredVersion:
    """Finish what an earlier attempt started for version ``v``: check its file, set its aliases
    (from its tags: the decision is the one that attempt made, not a new one against itself)."""
    name, version = v.name, str(v.version)
    sha256 = file_sha256(onnx_path)
    if v.tags.get(COMPLETE_TAG) != "true":
        with _global_uri(client), temp_dir(onnx_path.parent) as tmp:  # beside the export, not in /tmp
            got = _download_onnx(f"models:/{name}/{version}", Path(tmp))
            if file_sha256(got) != sha256:
                raise RegistryError(f"{name} v{version}: the logged model.onnx differs from the exported file (sha256); "
                                    "the artifact store changed the file")
    aliases = [a for a in v.tags.get(TAG + "aliases", "").split(",") if a]
    _set_aliases(client, name, version, aliases)
    client.set_model_version_tag(name, version, COMPLETE_TAG, "true")
    return RegisteredVersion(name, version, v.tags.get(TAG + "gate.decision", ""), v.tags.get(TAG + "gate.reason", ""), aliases,
                             sha256, f"models:/{name}/{version}")


def _download_onnx(model_uri: str, dst: Path) -> Path:
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    files = [local] if local.is_file() else sorted(local.rglob("*.onnx"))
    if not files:
        raise RegistryError(f"{model_uri}: no .onnx file in the model's artifacts")
    return files[0]


def _set_aliases(client: Any, name: str, version: str, aliases: Sequence[str]) -> None:
    for a in aliases:
        client.set_registered_model_alias(name, a, version)


def register_classifier(
    client: Any,
    run_id: str,
    onnx_path: str | os.PathLike[str],
    candidate: ClassifierCandidate,
    *,
    nominated: bool,
    names: RegistryNames = RegistryNames(),
    margin: float = NON_INFERIORITY_MARGIN,
    pipeline_run_id: str | None = None,
    lineage: Mapping[str, str] | None = None,
) -> RegisteredVersion:
    """Register an exported classifier, apply the promotion gate when ``nominated``, set aliases and tags."""
    import numpy as np

    from lusynth.export.onnx_export import ort_session, parity_frames

    onnx_path = Path(onnx_path)
    name = names.classifier
    earlier = own_version(client, name, file_sha256(onnx_path), pipeline_run_id)
    if earlier is not None:  # a retried export task: its first attempt registered this file
        return _resume(client, earlier, onnx_path)
    example = parity_frames(candidate.image_size, 2).numpy()
    probs = ort_session(onnx_path).run(None, {"frames": example})[0].astype(np.float32)
    champ = current_champion(client, name)
    if nominated:
        gate = promotion_decision(candidate.holdout_auc, _version_auc(champ) if champ is not None else None,
                                  uses_synthetic=candidate.uses_synthetic, privacy_passed=candidate.privacy_passed,
                                  margin=margin, champion_version=str(champ.version) if champ is not None else None)
    else:
        gate = GateDecision(CANDIDATE, f"not this run's nominee: another arm has a higher validation AUC "
                                       f"(this one {candidate.val_auc:.3f})")
    auc = candidate.holdout_auc
    tags = {
        TAG + "kind": "classifier", TAG + "arm": candidate.arm, TAG + "fraction": f"{candidate.fraction:g}",
        TAG + "seed": str(candidate.seed), TAG + "val_auc": f"{candidate.val_auc:.6f}",
        TAG + "data_digest": candidate.data_digest, TAG + "synthetic_digests": ",".join(candidate.synthetic_digests) or "none",
        TAG + "privacy_audit": ("not-needed" if not candidate.uses_synthetic else
                                "passed" if candidate.privacy_passed else "failed" if candidate.privacy_passed is False else "missing"),
        TAG + "pipeline_run": pipeline_run_id or "", TAG + "gate.decision": gate.decision, TAG + "gate.reason": gate.reason,
        TAG + "gate.margin": f"{margin:g}", TAG + "source_dir": str(candidate.classifier_dir),
    }
    if auc is not None:
        tags.update({TAG + "holdout_auc": f"{auc.value:.6f}", TAG + "holdout_auc_lo": f"{auc.lo:.6f}",
                     TAG + "holdout_auc_hi": f"{auc.hi:.6f}", TAG + "holdout_auc_ci": f"{candidate.ci:g}"})
    # run lineage (commit, DVC rev, KFP run, profile) without overriding this version's own facts
    tags = {**{k: v for k, v in (lineage or {}).items() if k.startswith(TAG) and k not in (TAG + "data_digest", TAG + "seed")}, **tags}
    card = classifier_model_card(candidate, gate=gate, onnx_sha256=file_sha256(onnx_path), pipeline_run_id=pipeline_run_id,
                                 lineage=lineage or {})
    aliases = ["arm-" + slugify(candidate.arm, keep="A-Za-z0-9_-")]
    if gate.decision in (CHAMPION, CHALLENGER):
        aliases.append(gate.decision)
    tags[TAG + "aliases"] = ",".join(aliases)
    version, sha = _log_onnx_version(client, run_id, name, onnx_path, example, probs, "classifier", tags, card)
    _set_aliases(client, name, version, aliases)
    client.set_model_version_tag(name, version, COMPLETE_TAG, "true")
    return RegisteredVersion(name, version, gate.decision, gate.reason, aliases, sha, f"models:/{name}/{version}")


def register_generator(
    client: Any,
    run_id: str,
    onnx_path: str | os.PathLike[str],
    *,
    audit: Mapping[str, Any] | None,
    names: RegistryNames = RegistryNames(),
    pipeline_run_id: str | None = None,
) -> RegisteredVersion:
    """Register an exported generator; ``champion`` only when its privacy audit passed, no alias
    when ``lusynth audit`` decided ``fail`` (``challenger`` otherwise: no audit, insufficient evidence)."""
    import numpy as np

    from lusynth.export.onnx_export import ort_session, read_metadata

    onnx_path = Path(onnx_path)
    meta = read_metadata(onnx_path)
    label = meta.get("lusynth.label") or "unknown"
    name = names.generator(label)
    earlier = own_version(client, name, file_sha256(onnx_path), pipeline_run_id)
    if earlier is not None:  # a retried export task: its first attempt registered this file
        return _resume(client, earlier, onnx_path)
    z = np.random.default_rng(0).standard_normal((2, int(meta["lusynth.nz"]))).astype(np.float32)
    frames = ort_session(onnx_path).run(None, {"z": z})[0]
    passed = bool(audit and audit.get("gate", {}).get("passed"))
    failed = bool(audit and audit.get("gate", {}).get("decision") == "fail")  # lusynth audit's decision: no alias at all
    gate = (GateDecision(CHAMPION, "privacy audit passed") if passed else
            GateDecision(CANDIDATE, "privacy audit failed: " + "; ".join(audit.get("gate", {}).get("reasons", [])))
            if failed and audit else
            GateDecision(CHALLENGER, "privacy audit " + (f"{str(audit.get('gate', {}).get('decision') or 'not passed').replace('_', ' ')}: "
                                                         + "; ".join(audit.get("gate", {}).get("reasons", []))
                                                         if audit else "missing (pass --evaluation)")))
    tags = {TAG + "kind": "generator", TAG + "label": label, TAG + "fraction": meta.get("lusynth.fraction", ""),
            TAG + "data_digest": meta.get("lusynth.data_digest", ""),
            TAG + "privacy_audit": "passed" if passed else ("failed" if audit else "missing"),
            TAG + "pipeline_run": pipeline_run_id or "", TAG + "gate.decision": gate.decision, TAG + "gate.reason": gate.reason}
    if audit:
        for k, v in (audit.get("privacy") or {}).items():
            if isinstance(v, (int, float)):
                tags[TAG + "privacy." + k] = f"{v:.6g}"
    card = generator_model_card(meta, audit, gate=gate, onnx_sha256=file_sha256(onnx_path), pipeline_run_id=pipeline_run_id)
    aliases = [gate.decision] if gate.decision in (CHAMPION, CHALLENGER) else []  # a generator that FAILs gets no alias
    tags[TAG + "aliases"] = ",".join(aliases)
    version, sha = _log_onnx_version(client, run_id, name, onnx_path, z, frames, f"generator-{label}", tags, card)
    _set_aliases(client, name, version, aliases)
    client.set_model_version_tag(name, version, COMPLETE_TAG, "true")
    return RegisteredVersion(name, version, gate.decision, gate.reason, aliases, sha, f"models:/{name}/{version}")


# ---------------------------------------------------------------------------------------------
# reading back: versions for a reviewer, one version for serving


def find_version(client: Any, name: str, *, alias: str | None = None, version: str | None = None, source: str) -> Any:
    """The version behind ``name@alias`` (or ``name/version``); :class:`RegistryError` naming
    ``source`` (what the user asked for) when the registry has no such version."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{source}: not in the registry at {client.tracking_uri} ({exc.message.splitlines()[0]}); "
                            "run `lusynth registry show` to list models and aliases") from None


def download_onnx(client: Any, name: str, version: str, dst: str | os.PathLike[str]) -> Path:
    """Download version ``version`` of ``name`` from ``client``'s store into ``dst``; the .onnx file's path."""
    with _global_uri(client):
        return _download_onnx(f"models:/{name}/{version}", Path(dst))


@dataclass
class VersionSummary:
    """One model version as a reviewer sees it."""

    name: str
    version: str
    aliases: list[str]
    created: int
    tags: dict[str, str]
    run_id: str | None

    @property
    def decision(self) -> str:
        return self.tags.get(TAG + "gate.decision", "")

    @property
    def reason(self) -> str:
        return self.tags.get(TAG + "gate.reason", "")


def list_versions(client: Any, name: str | None = None, *, names: RegistryNames = RegistryNames()) -> list[VersionSummary]:
    """Versions of ``name`` (or of every lusynth model), newest first, with aliases and tags."""
    if name:
        models = [client.get_registered_model(name)]
    else:
        models = [m for m in client.search_registered_models(max_results=1000)
                  if m.name == names.classifier or m.name.startswith(names.generator_prefix)]
    out = []
    for m in sorted(models, key=lambda x: x.name):
        alias_of: dict[str, list[str]] = {}
        for a, v in (getattr(m, "aliases", None) or {}).items():
            alias_of.setdefault(str(v), []).append(a)
        for v in client.search_model_versions(f"name='{m.name}'", max_results=1000):
            out.append(VersionSummary(m.name, str(v.version), sorted(alias_of.get(str(v.version), [])),
                                      int(v.creation_timestamp or 0), dict(v.tags), v.run_id))
    return sorted(out, key=lambda s: (s.name, -int(s.version)))
