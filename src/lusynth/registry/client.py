"""The MLflow model registry, I/O: registering ONNX versions with tags, model cards and aliases,
reading the current champion and the version list back, downloading a version's ONNX file.

Registered models (names configurable, :class:`~lusynth.registry.gate.RegistryNames`):

- ``lusynth-lus-classifier``: one version per exported classifier (the best by validation AUC of
  each arm in a pipeline run);
- ``lusynth-lus-generator-<class>``: one version per exported generator of that class.

Each version is a logged model (``mlflow.onnx.log_model``, CPU execution provider, a signature and
an input example) of the run that trained it, registered with ``mlflow.register_model`` on its
``models:/<model_id>`` URI, so the version's source run is the training run and the logged model
lists its version; the logged model carries the holdout metrics with their CI bounds (a
classifier) or the privacy audit's numbers (a generator), logged in the registering run. Each
version carries tags (``lusynth.*``: holdout AUC with its CI, arm, fraction, privacy-audit result,
data digest, pipeline run, ONNX sha256, gate decision, review status) and a model card as its
description (:mod:`lusynth.registry.cards`).

Aliases (MLflow 3, no stages): the gate's decision (:mod:`lusynth.registry.gate`) becomes the
``candidate`` or ``challenger`` alias of the nominee (none when it is ``ineligible``); every
classifier version also becomes ``arm-<arm>`` (the latest of its arm). Decisions and reasons are
tags ``lusynth.gate.decision`` / ``lusynth.gate.reason``. ``champion`` is never set here: a
reviewer moves it (:mod:`lusynth.registry.review`).

MLflow is reached through :mod:`lusynth.tracking` (URI, reachability, retries) and this module
only; mlflow itself is imported inside the functions, so the pure modules stay light.
"""

from __future__ import annotations

import contextlib
import math
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
    GATE_ALIASES,
    INELIGIBLE,
    NON_INFERIORITY_MARGIN,
    NOT_NOMINATED,
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


def _source_run(client: Any, training_run_id: str | None, fallback: str) -> str:
    """The run a version comes from: the run that trained it when this store holds it (a model trained
    with tracking off, or into another store, falls back to the registering run)."""
    from mlflow.exceptions import MlflowException

    if training_run_id:
        try:
            client.get_run(training_run_id)
            return training_run_id
        except MlflowException:
            pass
    return fallback


def _log_onnx_version(client: Any, run_id: str, name: str, onnx_path: Path, input_example: Any, output_example: Any,
                      artifact_name: str, tags: Mapping[str, str], description: str, *, source_run_id: str | None = None,
                      model_metrics: Mapping[str, float] | None = None, metrics_dataset: Any = None) -> tuple[str, str]:
    """Log the ONNX file with the onnx flavour as a logged model of its training run (``source_run_id``,
    else ``run_id``), register it so that the logged model lists the version (``mlflow.register_model``
    on ``models:/<model_id>``: the version's source run is the logged model's), and put
    ``model_metrics`` (holdout) on the logged model, logged in ``run_id`` (the registering run);
    (version, sha256)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in pipeline logs
    import io

    import mlflow
    import onnx
    from mlflow.entities import Metric
    from mlflow.models import infer_signature

    from lusynth.runtime import temporary_env
    from lusynth.tracking.spool import now_ms

    sha = file_sha256(onnx_path)
    model = onnx.load(str(onnx_path))
    signature = infer_signature(input_example, output_example)
    _ensure_model(client, name, description=f"lusynth {artifact_name}: see each version's model card")
    source = _source_run(client, source_run_id, run_id)
    exp = client.get_experiment(client.get_run(source).info.experiment_id)
    # the logged model belongs to its source run's experiment (MLflow takes it from the environment
    # when no run is active; activating the finished training run would reopen it)
    with _global_uri(client), temporary_env({"MLFLOW_EXPERIMENT_NAME": exp.name, "MLFLOW_EXPERIMENT_ID": exp.experiment_id}):
        info = mlflow.onnx.log_model(model, name=artifact_name, signature=signature, input_example=input_example,
                                     onnx_execution_providers=["CPUExecutionProvider"], pip_requirements=PIP_REQUIREMENTS,
                                     save_as_external_data=False, run_id=source)
        with contextlib.redirect_stderr(io.StringIO()):  # "Registered model ... already exists" per version
            mv = mlflow.register_model(f"models:/{info.model_id}", name, tags={**tags, TAG + "onnx_sha256": sha})
        client.update_model_version(name, mv.version, description=description)
        if model_metrics:
            ts = now_ms()
            ds = metrics_dataset or (None, None)
            client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0, model_id=info.model_id, dataset_name=ds[0],
                                                     dataset_digest=ds[1], run_id=run_id) for k, v in model_metrics.items()])
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


def holdout_metrics(candidate: ClassifierCandidate) -> dict[str, float]:
    """The holdout metrics a classifier's logged model carries: each metric's value and CI bounds,
    frame and patient level (``holdout_auc``, ``holdout_auc_ci_low``, ``patient_holdout_auc``, ...)."""
    out: dict[str, float] = {}
    for prefix, table in (("holdout_", candidate.holdout), ("patient_holdout_", candidate.holdout_patient)):
        for m, v in table.items():
            for suffix, field_ in (("", "value"), ("_ci_low", "lo"), ("_ci_high", "hi")):
                x = v.get(field_) if isinstance(v, Mapping) else None
                if isinstance(x, (int, float)) and math.isfinite(float(x)):
                    out[f"{prefix}{m}{suffix}"] = float(x)
    return out


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
    holdout_dataset: tuple[str, str] | None = None,
) -> RegisteredVersion:
    """Register an exported classifier (a logged model of its training run, carrying its holdout
    metrics; ``holdout_dataset`` = (name, digest) of the MLflow dataset they were measured on), apply
    the promotion gate when ``nominated``, set aliases and tags. Never ``champion``: a reviewer's step."""
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
    elif not candidate.privacy_eligible:  # the same rule as for a nominee: no alias, whatever its AUC
        gate = promotion_decision(candidate.holdout_auc, None, uses_synthetic=True, privacy_passed=candidate.privacy_passed,
                                  margin=margin)
    else:
        gate = GateDecision(NOT_NOMINATED, f"not this run's nominee: another arm has a higher validation AUC "
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
    if gate.decision in GATE_ALIASES:
        aliases.append(gate.decision)
    tags[TAG + "aliases"] = ",".join(aliases)
    tags[TAG + "review.status"] = "pending" if gate.decision in GATE_ALIASES else "not-requested"
    version, sha = _log_onnx_version(client, run_id, name, onnx_path, example, probs, "classifier", tags, card,
                                     source_run_id=candidate.training_run_id, model_metrics=holdout_metrics(candidate),
                                     metrics_dataset=holdout_dataset)
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
    training_run_id: str | None = None,
) -> RegisteredVersion:
    """Register an exported generator (a logged model of its ``train_gan`` run ``training_run_id``):
    ``candidate`` when its privacy audit passed, no alias when ``lusynth audit`` decided ``fail``,
    ``challenger`` otherwise (no audit, insufficient evidence). Never ``champion``: a reviewer's step."""
    import numpy as np

    from lusynth.export.onnx_export import ort_session, read_metadata

    onnx_path = Path(onnx_path)
    meta = read_metadata(onnx_path)
    label = meta.get("lusynth.label") or "unknown"
    name = names.generator(label, meta.get("lusynth.generator_family") or "dcgan")
    earlier = own_version(client, name, file_sha256(onnx_path), pipeline_run_id)
    if earlier is not None:  # a retried export task: its first attempt registered this file
        return _resume(client, earlier, onnx_path)
    z = np.random.default_rng(0).standard_normal((2, int(meta["lusynth.nz"]))).astype(np.float32)
    frames = ort_session(onnx_path).run(None, {"z": z})[0]
    passed = bool(audit and audit.get("gate", {}).get("passed"))
    failed = bool(audit and audit.get("gate", {}).get("decision") == "fail")  # lusynth audit's decision: no alias at all
    reasons = "; ".join((audit or {}).get("gate", {}).get("reasons", []))
    if passed:
        gate = GateDecision(CANDIDATE, "privacy audit passed; awaiting review")
    elif failed:
        gate = GateDecision(INELIGIBLE, "privacy audit failed: " + reasons)
    elif audit:
        decision = str(audit.get("gate", {}).get("decision") or "not passed").replace("_", " ")
        gate = GateDecision(CHALLENGER, f"privacy audit {decision}: {reasons}")
    else:
        gate = GateDecision(CHALLENGER, "privacy audit missing (pass --evaluation)")
    tags = {TAG + "kind": "generator", TAG + "label": label, TAG + "fraction": meta.get("lusynth.fraction", ""),
            # an ONNX file exported before the FastGAN family carries none: a DCGAN
            TAG + "generator_family": meta.get("lusynth.generator_family") or "dcgan",
            TAG + "data_digest": meta.get("lusynth.data_digest", ""),
            TAG + "privacy_audit": ("missing" if not audit else "passed" if passed else
                                    str(audit.get("gate", {}).get("decision") or "fail").replace("_", "-").replace("fail", "failed")),
            TAG + "pipeline_run": pipeline_run_id or "", TAG + "gate.decision": gate.decision, TAG + "gate.reason": gate.reason}
    if audit:
        for k, v in (audit.get("privacy") or {}).items():
            if isinstance(v, (int, float)):
                tags[TAG + "privacy." + k] = f"{v:.6g}"
    card = generator_model_card(meta, audit, gate=gate, onnx_sha256=file_sha256(onnx_path), pipeline_run_id=pipeline_run_id)
    aliases = [gate.decision] if gate.decision in GATE_ALIASES else []  # a generator that FAILs gets no alias
    tags[TAG + "aliases"] = ",".join(aliases)
    tags[TAG + "review.status"] = "pending" if aliases else "not-requested"
    model_metrics = {f"privacy.{k}": float(v) for k, v in ((audit or {}).get("privacy") or {}).items()
                     if isinstance(v, (int, float)) and math.isfinite(float(v))}
    version, sha = _log_onnx_version(client, run_id, name, onnx_path, z, frames, f"generator-{label}", tags, card,
                                     source_run_id=training_run_id, model_metrics=model_metrics)
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
        if alias == CHAMPION:  # the pipeline never sets it: a reviewer has not approved a version yet
            raise RegistryError(f"{source}: {name} has no champion at {client.tracking_uri}; a reviewer makes one with "
                                "`lusynth registry approve VERSION --reason ...` (`lusynth registry show` lists the candidates)") from None
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
    model_id: str | None = None  # the logged model behind the version (MLflow 3)

    @property
    def decision(self) -> str:
        return self.tags.get(TAG + "gate.decision", "")

    @property
    def reason(self) -> str:
        return self.tags.get(TAG + "gate.reason", "")


def logged_model_id(v: Any) -> str | None:
    """The logged model behind a model version: its ``model_id``, or, through the REST API (whose
    ModelVersion message has no model id in MLflow 3.17), the id in its ``models:/<model_id>`` source."""
    mid = getattr(v, "model_id", None)
    if mid:
        return str(mid)
    source = str(getattr(v, "source", "") or "")
    rest = source.removeprefix("models:/")
    return rest if rest != source and rest.startswith("m-") and "/" not in rest else None


def list_versions(client: Any, name: str | None = None, *, names: RegistryNames = RegistryNames()) -> list[VersionSummary]:
    """Versions of ``name`` (or of every lusynth model), newest first, with aliases and tags."""
    from mlflow.exceptions import MlflowException

    if name:
        try:
            models = [client.get_registered_model(name)]
        except MlflowException:
            raise RegistryError(f"model {name!r}: not in the registry at {client.tracking_uri}; "
                                "`lusynth registry show` lists the models") from None
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
                                      int(v.creation_timestamp or 0), dict(v.tags), v.run_id, logged_model_id(v)))
    return sorted(out, key=lambda s: (s.name, -int(s.version)))
