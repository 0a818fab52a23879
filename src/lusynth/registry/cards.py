"""Model cards, pure: the Markdown description of a registered classifier or generator version,
written from the values the registry stage already holds (no MLflow, no file reads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lusynth.registry.gate import NON_INFERIORITY_MARGIN, RULE, ClassifierCandidate, GateDecision

__all__ = ["classifier_model_card", "generator_model_card"]


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
        "Rule: " + RULE.format(margin=NON_INFERIORITY_MARGIN),
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


def audit_limits(params: Any = None) -> list[str]:
    """The privacy audit's limits and decision rule, for a model card (``params``: an
    :class:`~lusynth.privacy.params.AuditParams`, default the demo's)."""
    from lusynth.privacy.params import AuditParams

    p = params or AuditParams()
    return [
        "Privacy audit (`lusynth audit`, lusynth.privacy) limits, on the generator's unfiltered output:",
        f"- near-copy rate <= {p.max_copy_rate:g} (a near-copy: closer to one training patient, relative to the next, than "
        f"{p.copy_margin:g} x the {p.percentile:g}th percentile of calibration (val) patients; spaces: {', '.join(p.features)}); "
        "Clopper-Pearson interval;",
        f"- each patient-level membership-inference AUC (distance, reference, discriminator) <= {p.max_mia_auc:g}; stratified "
        "patient bootstrap interval and patient permutation p-value;",
        f"- decision at {p.ci:g} confidence: pass only when every upper bound is under its limit; fail when a "
        "Bonferroni-adjusted lower bound is over it (and, for an AUC, its permutation test rejects); otherwise "
        "insufficient evidence, with the patient or frame count that would settle it.",
    ]


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
        # an export before the FastGAN family carries no architecture: it was a DCGAN
        f"{meta.get('lusynth.architecture') or 'Unconditional DCGAN generator (Yu et al. 2023)'}. Input `z`: float32 (N, {meta.get('lusynth.nz')}) standard normal; "
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
    lines += ["", *audit_limits()]
    lines += ["", "## Promotion gate", f"Decision: **{gate.decision}** — {gate.reason}.",
              "Rule: `candidate` when the privacy audit passed, `challenger` when it was undecided or missing, `ineligible` "
              "(no alias) when it failed; only a reviewer sets champion (`lusynth registry approve`).",
              "", "## Limitations",
              "- Fidelity metrics use the project's own classifier features, not Inception: not comparable with published FID.",
              "- The privacy audit bounds, but does not rule out, leakage of training patients.",
              "", "## Lineage", f"- pipeline run: `{pipeline_run_id or 'n/a'}`"]
    return "\n".join(lines) + "\n"

