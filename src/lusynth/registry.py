"""The MLflow model registry: registration, model cards, the promotion gate, and what a reviewer sees.

Registered models (names configurable, :class:`RegistryNames`):

- ``lusynth-lus-classifier``: one version per exported classifier (the best by validation AUC of
  each arm in a pipeline run);
- ``lusynth-lus-generator-<class>``: one version per exported generator of that class.

Each version is logged with the ONNX flavour (``mlflow.onnx.log_model``, CPU execution provider),
a signature and an input example, and carries tags (``lusynth.*``: holdout AUC with its CI, arm,
fraction, privacy-audit result, data digest, pipeline run, ONNX sha256, gate decision) and a model
card as its description (:func:`classifier_model_card`, :func:`generator_model_card`).

Promotion gate (MLflow 3 aliases, no stages). A pipeline run nominates one classifier -- the best
validation AUC over its arms (validation, not holdout, so the holdout stays untouched by the
choice). The nominee gets the ``champion`` alias when (:func:`promotion_decision`):

1. there is no champion yet, or its holdout AUC lower 95 % bound is not worse than the champion's
   holdout AUC point estimate minus the non-inferiority margin (default 0.02):
   ``new.lo >= champion.value - margin``; **and**
2. if it was trained on any synthetic data (arm != ``real``), the privacy audit of every
   synthetic store it used passed (no audit = not passed).

Otherwise it gets ``challenger``. The other arms' versions get no champion/challenger alias
(decision ``candidate``). Every classifier version also becomes ``arm-<arm>`` (the latest of its
arm). Decisions and reasons are tags ``lusynth.gate.decision`` / ``lusynth.gate.reason``.
A generator becomes its model's ``champion`` when its privacy audit passed, else ``challenger``.

MLflow is reached through :mod:`lusynth.tracking` (URI, reachability, retries) and here.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lusynth.errors import InputError, LusynthError

DEFAULT_CLASSIFIER_MODEL = "lusynth-lus-classifier"
DEFAULT_GENERATOR_PREFIX = "lusynth-lus-generator-"
CHAMPION = "champion"
CHALLENGER = "challenger"
CANDIDATE = "candidate"
NON_INFERIORITY_MARGIN = 0.02
ONNX_FILE = "model.onnx"
TAG = "lusynth."
PIP_REQUIREMENTS = ["onnx", "onnxruntime"]


class RegistryError(LusynthError):
    """The registry holds something unexpected, or a model cannot be resolved."""


@dataclass(frozen=True)
class RegistryNames:
    """Registered model names (configurable per deployment)."""

    classifier: str = DEFAULT_CLASSIFIER_MODEL
    generator_prefix: str = DEFAULT_GENERATOR_PREFIX

    def generator(self, label: str) -> str:
        """Model name of ``label``'s generator (non-name characters become '-')."""
        return self.generator_prefix + re.sub(r"[^A-Za-z0-9_.-]+", "-", label)


# ---------------------------------------------------------------------------------------------
# pure: the gate and the model cards


@dataclass(frozen=True)
class AUCEstimate:
    """Holdout ROC AUC with its (patient-level bootstrap) confidence interval."""

    value: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


@dataclass(frozen=True)
class GateDecision:
    """``champion`` / ``challenger`` / ``candidate`` and why."""

    decision: str
    reason: str
    champion_version: str | None = None


def promotion_decision(
    new: AUCEstimate | None,
    champion: AUCEstimate | None,
    *,
    uses_synthetic: bool,
    privacy_passed: bool | None,
    margin: float = NON_INFERIORITY_MARGIN,
    champion_version: str | None = None,
) -> GateDecision:
    """The promotion rule of the module docstring (pure)."""
    if not uses_synthetic:
        privacy = "no synthetic training data: privacy gate not needed"
    elif privacy_passed:
        privacy = "privacy gate passed for its synthetic data"
    else:
        why = "failed" if privacy_passed is False else "has no audit"
        return GateDecision(CHALLENGER, f"trained on synthetic data whose privacy gate {why}: never champion",
                            champion_version)
    if new is None or not all(math.isfinite(v) for v in (new.value, new.lo)):
        return GateDecision(CHALLENGER, "no holdout AUC with a CI (run `lusynth evaluate` and pass --evaluation)",
                            champion_version)
    if champion is None:
        return GateDecision(CHAMPION, f"no current champion; holdout AUC {new}; {privacy}", None)
    bar = champion.value - margin
    if new.lo >= bar:
        return GateDecision(CHAMPION, f"holdout AUC {new}: lower bound {new.lo:.3f} >= champion v{champion_version} AUC "
                                      f"{champion.value:.3f} - margin {margin:g} = {bar:.3f} (non-inferior); {privacy}",
                            champion_version)
    return GateDecision(CHALLENGER, f"holdout AUC {new}: lower bound {new.lo:.3f} < champion v{champion_version} AUC "
                                    f"{champion.value:.3f} - margin {margin:g} = {bar:.3f} (not shown non-inferior)",
                        champion_version)


@dataclass
class ClassifierCandidate:
    """One trained classifier with what the gate and the model card need."""

    classifier_dir: Path
    arm: str
    fraction: float
    seed: int
    val_auc: float
    data_digest: str
    synthetic_digests: list[str] = field(default_factory=list)
    holdout: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> {value, lo, hi}, frame level
    holdout_patient: dict[str, dict[str, float]] = field(default_factory=dict)
    privacy_passed: bool | None = None  # None: no synthetic data, or no evaluation given
    privacy_reasons: list[str] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    n_holdout_frames: int | None = None
    n_holdout_patients: int | None = None
    ci: float = 0.95
    threshold: float = 0.5
    classes: list[str] = field(default_factory=list)
    image_size: int = 0

    @property
    def uses_synthetic(self) -> bool:
        return self.arm != "real" or bool(self.synthetic_digests)

    @property
    def holdout_auc(self) -> AUCEstimate | None:
        a = self.holdout.get("auc")
        return AUCEstimate(float(a["value"]), float(a["lo"]), float(a["hi"])) if a else None


def best_per_arm(candidates: Sequence[ClassifierCandidate]) -> dict[str, ClassifierCandidate]:
    """The best classifier of each arm by validation AUC (ties: larger fraction, lower seed)."""
    out: dict[str, ClassifierCandidate] = {}
    for c in candidates:
        key = (_finite(c.val_auc), c.fraction, -c.seed)
        cur = out.get(c.arm)
        if cur is None or key > (_finite(cur.val_auc), cur.fraction, -cur.seed):
            out[c.arm] = c
    return dict(sorted(out.items()))


def _finite(x: float) -> float:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else float("-inf")


def _fmt_ci(m: Mapping[str, float] | None) -> str:
    if not m:
        return "n/a"
    return f"{m['value']:.3f} ({m['lo']:.3f}–{m['hi']:.3f})"


def classifier_model_card(c: ClassifierCandidate, *, gate: GateDecision | None, onnx_sha256: str,
                          pipeline_run_id: str | None, lineage: Mapping[str, str]) -> str:
    """Markdown model card of one classifier version (pure)."""
    lines = [
        f"# LUS frame classifier — arm `{c.arm}`, training fraction {c.fraction:g}, seed {c.seed}",
        "",
        "## Intended use",
        f"Research use: classify single lung-ultrasound frames ({c.image_size}×{c.image_size} grey, as written by "
        f"`lusynth ingest`) as {' vs '.join(f'`{x}`' for x in c.classes)}; the positive-class probability is compared with "
        f"the validation-chosen threshold {c.threshold:.3f}. Built to answer whether GAN-synthetic data helps or can "
        "replace real patient data. **Not a medical device; not for diagnosis.**",
        "",
        "## Model",
        "Separable-convolution VGG-style network (Yu et al. 2023). ONNX graph input `frames`: uint8 (N, S, S) raw pixels; "
        "preprocessing (÷255, per-image standardisation) is inside the graph; output `probabilities` (N, classes).",
        f"ONNX sha256 `{onnx_sha256}`.",
        "",
        "## Data",
        f"- real frame store digest: `{c.data_digest}`",
        f"- synthetic stores used: {', '.join(f'`{d}`' for d in c.synthetic_digests) or 'none'}",
        f"- holdout: {c.n_holdout_frames if c.n_holdout_frames is not None else 'n/a'} frames of "
        f"{c.n_holdout_patients if c.n_holdout_patients is not None else 'n/a'} patients no model saw (patient-level split)",
        "",
        f"## Metrics (holdout, {c.ci:.0%} patient-level bootstrap CIs)",
        "| metric | frame level | patient level |",
        "|---|---|---|",
    ]
    for m in ("auc", "sensitivity", "specificity", "accuracy", "f1"):
        lines.append(f"| {m} | {_fmt_ci(c.holdout.get(m))} | {_fmt_ci(c.holdout_patient.get(m))} |")
    lines += ["", f"Validation AUC (model selection): {c.val_auc:.3f}.", "", "## Privacy audit"]
    if not c.uses_synthetic:
        lines.append("Trained on real data only: no synthetic data, so no synthetic-data privacy gate applies.")
    elif c.privacy_passed is None:
        lines.append("**No privacy audit found** for the synthetic data this model used.")
    else:
        lines.append(f"Privacy gate of the synthetic data used: **{'passed' if c.privacy_passed else 'FAILED'}**.")
        for a in c.audits:
            p = a.get("privacy", {})
            lines.append(f"- {a.get('name')}: memorisation rate {p.get('memorisation_rate', float('nan')):.3f}, "
                         f"distance MIA AUC {p.get('distance_mia_auc', float('nan')):.3f}, gate "
                         f"{'passed' if a.get('gate', {}).get('passed') else 'failed'}")
        lines += [f"- {r}" for r in c.privacy_reasons]
    lines += ["", "## Promotion gate"]
    if gate is not None:
        lines.append(f"Decision: **{gate.decision}** — {gate.reason}.")
    lines += [
        f"Rule: champion if no champion, or holdout AUC lower bound ≥ champion AUC − {NON_INFERIORITY_MARGIN:g}, and the "
        "privacy gate passed for any synthetic data used; else challenger.",
        "",
        "## Limitations",
        "- Frame-level model: consecutive frames of one clip are correlated; CIs resample patients to account for it.",
        "- Trained and evaluated on the data versions named above only; a different probe, preset or population needs a "
        "new evaluation. The built-in phantom is not clinical data.",
        "- Small holdouts give wide intervals; read the CIs, not the point estimates.",
        "",
        "## Lineage",
        f"- pipeline run: `{pipeline_run_id or 'n/a'}`",
        *(f"- {k}: `{v}`" for k, v in sorted(lineage.items())),
    ]
    return "\n".join(lines) + "\n"


def generator_model_card(meta: Mapping[str, str], audit: Mapping[str, Any] | None, *, gate: GateDecision,
                         onnx_sha256: str, pipeline_run_id: str | None) -> str:
    """Markdown model card of one generator version (pure)."""
    label = meta.get("lusynth.label", "?")
    lines = [
        f"# LUS frame generator — class `{label}`, training fraction {meta.get('lusynth.fraction', '?')}",
        "", "## Intended use",
        f"Research use: synthetic {meta.get('lusynth.image_size')}² grey lung-ultrasound frames of class `{label}` for "
        "training-data experiments. Synthetic frames must not be presented as real patient data.",
        "", "## Model",
        f"Unconditional DCGAN generator (Yu et al. 2023). Input `z`: float32 (N, {meta.get('lusynth.nz')}) standard normal; "
        f"output `frames`: uint8 (N, S, S). Checkpoint {meta.get('lusynth.checkpoint')} (step {meta.get('lusynth.chosen_step')}). "
        f"ONNX sha256 `{onnx_sha256}`.",
        "", "## Data", f"- real frame store digest: `{meta.get('lusynth.data_digest')}`",
        "", "## Privacy audit",
    ]
    if audit is None:
        lines.append("**No audit found** for this generator (pass the evaluation directory).")
    else:
        p, f = audit.get("privacy", {}), audit.get("fidelity", {})
        lines += [f"Gate: **{'passed' if audit.get('gate', {}).get('passed') else 'FAILED'}**."]
        lines += [f"- {k}: {v:.4g}" for k, v in sorted(p.items()) if isinstance(v, (int, float))]
        lines += [f"- {r}" for r in audit.get("gate", {}).get("reasons", [])]
        lines += ["", "## Fidelity", *(f"- {k}: {v:.4g}" for k, v in sorted(f.items()) if isinstance(v, (int, float)))]
    lines += ["", "## Promotion gate", f"Decision: **{gate.decision}** — {gate.reason}.",
              "", "## Limitations",
              "- Fidelity metrics use the project's own classifier features, not Inception: not comparable with published FID.",
              "- The privacy audit bounds, but does not rule out, leakage of training patients.",
              "", "## Lineage", f"- pipeline run: `{pipeline_run_id or 'n/a'}`"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# IO: reading the evaluation, talking to MLflow


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); re-run the stage that writes it") from exc


def load_candidates(classifier_dirs: Sequence[str | os.PathLike[str]], evaluation_dir: str | os.PathLike[str] | None = None
                    ) -> list[ClassifierCandidate]:
    """Candidates from classifier directories, with holdout metrics and audits from ``lusynth evaluate``'s report.json."""
    report = None
    if evaluation_dir is not None:
        report = _read_json(Path(evaluation_dir) / "report.json")
        if report is None:
            raise InputError(f"{evaluation_dir}: no report.json; pass the output directory of `lusynth evaluate`")
    by_dir: dict[str, dict[str, Any]] = {}
    by_key: dict[tuple[str, float, int], dict[str, Any]] = {}
    audits: list[dict[str, Any]] = []
    cfg: dict[str, Any] = {}
    if report is not None:
        for c in report.get("classifiers", []):
            by_dir[str(Path(c.get("dir", "")).resolve())] = c
            by_key[(c["arm"], float(c["fraction"]), int(c["seed"]))] = c
        audits = list(report.get("audits", []))
        cfg = report.get("config", {})
    out = []
    for d in classifier_dirs:
        d = Path(d)
        meta = _read_json(d / "classifier.json")
        if meta is None:
            raise InputError(f"{d}: no classifier.json; pass a directory written by `lusynth train-classifier`")
        data = meta.get("data") or {}
        real = str(data.get("real_digest", ""))
        synthetic = sorted({v for v in (data.get("store_digests") or {}).values() if v != real})
        cand = ClassifierCandidate(
            classifier_dir=d, arm=str(meta["arm"]), fraction=float(meta["fraction"]), seed=int(meta["seed"]),
            val_auc=float(meta.get("val_auc", float("nan"))), data_digest=real, synthetic_digests=synthetic,
            threshold=float(meta.get("threshold", 0.5)), classes=list(meta.get("classes", [])),
            image_size=int(meta.get("image_size", 0)))
        ev = by_dir.get(str(d.resolve())) or by_key.get((cand.arm, cand.fraction, cand.seed))
        if ev is not None:
            metrics = ev.get("metrics", {})
            cand.holdout = (metrics.get("frame") or {}).get("val") or {}
            cand.holdout_patient = (metrics.get("patient") or {}).get("val") or {}
            cand.ci = float((cfg.get("params") or {}).get("ci", 0.95))
            cand.n_holdout_frames = cfg.get("n_holdout_frames")
            cand.n_holdout_patients = cfg.get("n_holdout_patients")
        if cand.uses_synthetic and report is not None:
            used = [a for a in audits if a.get("synthetic_digest") in synthetic]
            cand.audits = used
            missing = [s for s in synthetic if s not in {a.get("synthetic_digest") for a in used}]
            if missing or not synthetic:
                cand.privacy_passed = False
                cand.privacy_reasons = [f"no privacy audit of synthetic store {s}" for s in missing] or \
                    ["arm uses synthetic data but the classifier records no synthetic store"]
            else:
                cand.privacy_passed = all(bool(a.get("gate", {}).get("passed")) for a in used)
                cand.privacy_reasons = [f"{a.get('name')}: {r}" for a in used for r in a.get("gate", {}).get("reasons", [])]
        out.append(cand)
    return out


@contextlib.contextmanager
def _global_uri(client: Any) -> Iterator[None]:
    """Point MLflow's global URIs at ``client``'s store for the block.

    ``mlflow.onnx.log_model`` needs an active (fluent) run, and the SQL registry resolves a
    ``models:/m-...`` source through the *global* tracking URI (MLflow 3.17), so both must name
    the store this client talks to; the previous URIs come back afterwards.
    """
    import mlflow

    prev = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client._registry_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(prev[0])
        mlflow.set_registry_uri(prev[1])


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


def _log_onnx_version(client: Any, run_id: str, name: str, onnx_path: Path, input_example: Any, output_example: Any,
                      artifact_name: str, tags: Mapping[str, str], description: str) -> tuple[str, str]:
    """Log the ONNX file with the onnx flavour under ``run_id`` and register it; (version, sha256)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in pipeline logs
    import mlflow
    import onnx
    from mlflow.models import infer_signature

    from lusynth.export.onnx_export import file_sha256

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
        with tempfile.TemporaryDirectory(prefix="lusynth-verify-") as tmp:
            got = _download_onnx(f"models:/{name}/{mv.version}", Path(tmp))
            if file_sha256(got) != sha:
                raise RegistryError(f"{name} v{mv.version}: the logged model.onnx differs from {onnx_path} (sha256); "
                                    "the artifact store changed the file")
    return str(mv.version), sha


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
    from lusynth.export.onnx_export import file_sha256

    card = classifier_model_card(candidate, gate=gate, onnx_sha256=file_sha256(onnx_path), pipeline_run_id=pipeline_run_id,
                                 lineage=lineage or {})
    version, sha = _log_onnx_version(client, run_id, name, onnx_path, example, probs, "classifier", tags, card)
    aliases = ["arm-" + re.sub(r"[^A-Za-z0-9_-]+", "-", candidate.arm)]
    if gate.decision in (CHAMPION, CHALLENGER):
        aliases.append(gate.decision)
    _set_aliases(client, name, version, aliases)
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
    """Register an exported generator; ``champion`` only when its privacy audit passed."""
    import numpy as np

    from lusynth.export.onnx_export import file_sha256, ort_session, read_metadata

    onnx_path = Path(onnx_path)
    meta = read_metadata(onnx_path)
    label = meta.get("lusynth.label") or "unknown"
    name = names.generator(label)
    z = np.random.default_rng(0).standard_normal((2, int(meta["lusynth.nz"]))).astype(np.float32)
    frames = ort_session(onnx_path).run(None, {"z": z})[0]
    passed = bool(audit and audit.get("gate", {}).get("passed"))
    gate = (GateDecision(CHAMPION, "privacy audit passed") if passed else
            GateDecision(CHALLENGER, "privacy audit " + ("failed: " + "; ".join(audit.get("gate", {}).get("reasons", []))
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
    version, sha = _log_onnx_version(client, run_id, name, onnx_path, z, frames, f"generator-{label}", tags, card)
    _set_aliases(client, name, version, [gate.decision])
    return RegisteredVersion(name, version, gate.decision, gate.reason, [gate.decision], sha, f"models:/{name}/{version}")


# ---------------------------------------------------------------------------------------------
# the stage: export + register


@dataclass
class ExportRegisterResult:
    """What ``lusynth export`` wrote and registered."""

    out_dir: Path
    classifiers: dict[str, Any]  # arm -> ExportResult
    generators: dict[str, Any]  # class -> ExportResult
    versions: list[RegisteredVersion]
    run_id: str | None
    nominee: str | None


def _gan_meta(gan_dir: Path) -> dict[str, Any]:
    meta = _read_json(gan_dir / "gan.json")
    if meta is None:
        raise InputError(f"{gan_dir}: no gan.json; pass the output directory of a finished `lusynth train-gan`")
    return meta


def export_and_register(
    out_dir: str | os.PathLike[str],
    *,
    classifier_dirs: Sequence[str | os.PathLike[str]],
    gan_dirs: Sequence[str | os.PathLike[str]] = (),
    evaluation_dir: str | os.PathLike[str] | None = None,
    register: bool = True,
    names: RegistryNames = RegistryNames(),
    margin: float = NON_INFERIORITY_MARGIN,
    opset: int = 18,
    profile: str | None = None,
) -> ExportRegisterResult:
    """Export the best classifier per arm and each class's generator (largest training fraction) to
    ``out_dir``; with ``register``, log them to the registry and apply the promotion gate."""
    from lusynth.atomic import atomic_dir, dumps_json
    from lusynth.export.onnx_export import export_classifier, export_generator
    from lusynth.tracking import PARENT_RUN_ENV, lineage_tags, stage_run

    if not classifier_dirs:
        raise InputError("export needs at least one classifier directory (--classifier DIR)")
    out_dir = Path(out_dir)
    cands = load_candidates(classifier_dirs, evaluation_dir)
    best = best_per_arm(cands)
    nominee = max(best.values(), key=lambda c: (_finite(c.val_auc), c.arm == "real")).arm
    gans: dict[str, tuple[Path, dict[str, Any]]] = {}
    for g in gan_dirs:
        meta = _gan_meta(Path(g))
        label = str(meta["label"])
        if label not in gans or float(meta["fraction"]) > float(gans[label][1]["fraction"]):
            gans[label] = (Path(g), meta)
    audits = (_read_json(Path(evaluation_dir) / "report.json") or {}).get("audits", []) if evaluation_dir else []
    digests = {"real": best[nominee].data_digest}
    versions: list[RegisteredVersion] = []
    pipeline_run_id = os.environ.get(PARENT_RUN_ENV)
    with atomic_dir(out_dir) as tmp:
        clf_results = {arm: export_classifier(c.classifier_dir, tmp / f"classifier-{re.sub(r'[^A-Za-z0-9_-]+', '-', arm)}.onnx",
                                              opset=opset) for arm, c in best.items()}
        gen_results = {label: export_generator(d, tmp / f"generator-{re.sub(r'[^A-Za-z0-9_-]+', '-', label)}.onnx", opset=opset)
                       for label, (d, _) in sorted(gans.items())}
        run_id = None
        if register:
            with stage_run("export", local_dir=out_dir.parent, run_name="export+register", data_digests=digests, profile=profile,
                           params={"margin": margin, "opset": opset, "nominee_arm": nominee,
                                   "classifier_model": names.classifier, "generator_prefix": names.generator_prefix}) as tr:
                from lusynth.tracking import mlflow_client

                run_id = tr.run_id
                client = mlflow_client(out_dir.parent)
                lineage = {k: v for k, v in lineage_tags(data_digests=digests, profile=profile).items() if not k.startswith("mlflow.")}
                # the nominee last, so the other arms never compare against a champion set in this same run
                for arm in sorted(best, key=lambda a: a == nominee):
                    v = register_classifier(client, tr.run_id, clf_results[arm].path, best[arm], nominated=arm == nominee,
                                            names=names, margin=margin, pipeline_run_id=pipeline_run_id, lineage=lineage)
                    versions.append(v)
                for label, res in gen_results.items():
                    d, meta = gans[label]
                    audit = next((a for a in audits if a.get("label") == label
                                  and abs(float(a.get("fraction", -1)) - float(meta["fraction"])) < 1e-9), None)
                    versions.append(register_generator(client, tr.run_id, res.path, audit=audit, names=names,
                                                       pipeline_run_id=pipeline_run_id))
                tr.set_tags({"lusynth.registered": ", ".join(f"{v.name} v{v.version} ({v.decision})" for v in versions)})
                tr.log_metrics({f"parity_max_abs_diff.{k}": r.max_abs_diff for k, r in {**clf_results, **gen_results}.items()})
        summary = {
            "nominee_arm": nominee, "run_id": run_id,
            "classifiers": {arm: {"file": r.path.name, "sha256": r.sha256, "exporter": r.exporter, "opset": r.opset,
                                  "max_abs_diff": r.max_abs_diff, "tolerance": r.tolerance,
                                  "source": str(best[arm].classifier_dir), "val_auc": best[arm].val_auc}
                            for arm, r in clf_results.items()},
            "generators": {label: {"file": r.path.name, "sha256": r.sha256, "exporter": r.exporter, "opset": r.opset,
                                   "max_abs_diff": r.max_abs_diff, "tolerance": r.tolerance, "source": str(gans[label][0])}
                           for label, r in gen_results.items()},
            "registered": [v.__dict__ for v in versions],
        }
        (tmp / "export.json").write_text(dumps_json(summary))
    for r in (*clf_results.values(), *gen_results.values()):
        r.path = out_dir / r.path.name
    return ExportRegisterResult(out_dir, clf_results, gen_results, versions, run_id, nominee)


# ---------------------------------------------------------------------------------------------
# reading back: show, resolve


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


def render_versions(versions: Sequence[VersionSummary]) -> Any:
    """A rich table for ``lusynth registry show``."""
    from rich.table import Table

    table = Table(title="lusynth model registry", show_lines=True)
    for col in ("model", "version", "aliases", "arm / class", "fraction", "holdout AUC [CI]", "privacy", "gate decision: reason"):
        table.add_column(col, overflow="fold")
    for v in versions:
        t = v.tags
        auc = "n/a"
        if TAG + "holdout_auc" in t:
            auc = f"{float(t[TAG + 'holdout_auc']):.3f} [{float(t[TAG + 'holdout_auc_lo']):.3f}, {float(t[TAG + 'holdout_auc_hi']):.3f}]"
        table.add_row(v.name, v.version, ", ".join(v.aliases) or "-", t.get(TAG + "arm") or t.get(TAG + "label", ""),
                      t.get(TAG + "fraction", ""), auc, t.get(TAG + "privacy_audit", ""), f"{v.decision}: {v.reason}")
    return table


@dataclass
class ResolvedModel:
    """A registry model (or a plain file) ready to load, with the hash it must have."""

    path: Path
    expected_sha256: str | None
    source: str
    name: str | None = None
    version: str | None = None


def resolve_model(uri: str, dst: str | os.PathLike[str], *, local_dir: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """``models:/NAME@alias`` or ``models:/NAME/VERSION`` -> downloaded ONNX file + the registry's sha256."""
    from mlflow.exceptions import MlflowException

    from lusynth.tracking import mlflow_client

    m = re.fullmatch(r"models:/([^@/]+)(?:@([A-Za-z0-9_-]+)|/(\d+))", uri)
    if not m:
        raise InputError(f"{uri!r}: use models:/NAME@ALIAS, models:/NAME/VERSION or a path to an .onnx file")
    name, alias, version = m.groups()
    client = mlflow_client(local_dir)
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{uri}: not in the registry at {client.tracking_uri} ({exc.message.splitlines()[0]}); "
                            "run `lusynth registry show` to list models and aliases") from None
    with _global_uri(client):
        path = _download_onnx(f"models:/{name}/{mv.version}", Path(dst))
    return ResolvedModel(path=path, expected_sha256=mv.tags.get(TAG + "onnx_sha256"), source=uri, name=name,
                         version=str(mv.version))
