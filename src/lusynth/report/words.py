"""How the report writes numbers and names things, shared by its verdicts, tables and pages.

Number formats (:func:`fmt`, :func:`signed`, :func:`interval`, ...), the names of metrics, figures,
generator families and questions, the flat metric key of a question (:func:`question_key`), and the
selectors of a report's results that several sections read (:func:`all_questions`, :func:`generators_of`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lusynth.keys import family_tag
from lusynth.util import display_path


def clean_json(obj: Any) -> Any:
    """NaN/inf -> None and tuples -> lists, so the JSON is strict (browsers and KFP parse it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy scalar
        return clean_json(obj.item())
    return obj


def slug(text: str) -> str:
    """A metric-name part (MLflow and KFP take letters, digits, ``_ - .``): ``real+synthetic [fastgan]`` -> ``real_plus_synthetic_fastgan``."""
    text = text.replace("+", "_plus_").replace("=", "").replace("[", "").replace("]", "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip())


def question_key(q: Mapping[str, Any]) -> str:
    """A question's metric name: ``qa_auc_diff_real_plus_synthetic_vs_real_f0.5``, with the family after
    the arm when not the paper's DCGAN (the DCGAN's names as before families) and, for (c), the
    baseline's family: ``qc_auc_diff_real_plus_synthetic_fastgan_vs_real_plus_synthetic_dcgan_f0.5``."""
    family = family_tag(slug(q.get("generator") or ""), "_")
    versus = slug(q["baseline"]) + (f"_{slug(q['baseline_generator'])}" if q.get("baseline_generator") else "")
    return f"q{q['question']}_{q['metric']}_diff_{slug(q['arm'])}{family}_vs_{versus}_f{q['fraction']:g}"


def all_questions(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The answered questions in the report's order: (a) and (b) per family, then the family comparisons (c)."""
    return [*results.get("questions", []), *results.get("comparisons", [])]


def fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def sig(v: Any) -> str:
    """Three significant digits (MMD², KID, FID span orders of magnitude)."""
    if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return "n/a"
    return f"{float(v):.3g}"


def has_interval(lo: Any, hi: Any) -> bool:
    """Whether both bounds are numbers (an estimate with no spread has NaN bounds: lusynth.stats.inference.combine)."""
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi))


def interval(lo: Any, hi: Any, too_few: bool | None) -> str:
    if too_few:
        return "[too few patients]"
    if not has_interval(lo, hi):
        return "[no interval]"  # e.g. no spread between the splits to build one from (lusynth.stats.inference.combine)
    return f"[{fmt(lo)}, {fmt(hi)}]"


def signed(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.3f}"


def pvalue(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def as_written(v: Any) -> str:
    """A fraction or margin as written in the parameters (``0.5``, ``1``)."""
    return f"{v:g}" if isinstance(v, (int, float)) else "n/a"


def pct(level: Any) -> str:
    """A level as a percentage: 95, 97.5 (a Bonferroni-split level keeps its half per cent)."""
    return f"{round(float(level if isinstance(level, (int, float)) else 0.95) * 100, 1):g}"


def ci_cell(v: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not v:
        return "-"
    value = v.get("tpr", v.get("auc", v.get("copy_rate")))
    return f"{fmt(value, digits)} [{fmt(v.get('lo'), digits)}, {fmt(v.get('hi'), digits)}]"


def pair(a: Any, b: Any, form: Any = fmt) -> str:
    return f"{form(a)} / {form(b)}" if b is not None else form(a)


#: metric -> (name, direction) for column headers: "AUC (patient, ↑)"
METRICS = {"auc": ("AUC", "↑"), "accuracy": ("Accuracy", "↑"), "f1": ("F1", "↑"), "sensitivity": ("Sensitivity", "↑"),
           "specificity": ("Specificity", "↑")}


def metric_header(metric: str, level: str = "patient") -> str:
    """A column header naming the metric, the level it is computed at and which way is better."""
    name, arrow = METRICS.get(metric, (metric, ""))
    return f"{name} ({level}, {arrow})" if arrow else f"{name} ({level})"


def figure_tag(label: str, fraction: float, gan_seed: int = 0, fold: int = 0, generator: str = "dcgan") -> str:
    """The suffix of a generator's figure names (``samples_<tag>``): class, fraction, GAN seed and fold when not 0,
    the family when not the paper's DCGAN."""
    return (f"{label}_f{fraction:g}" + (f"as_written{gan_seed}" if gan_seed else "") + (f"_k{fold}" if fold else "")
            + family_tag(generator, "_"))


#: figure name prefix (before the generator's tag) -> title in words, in the order they are shown
GAN_FIGURES = {
    "samples": "Real test frames (top) and synthetic frames (bottom)",
    "dcr": "Distance to the closest training frame: synthetic and real test frames, with the near-copy cut-off",
    "fidelity": "Fidelity and copying during GAN training: MMD², 1-NN accuracy and near-copy rate per step, with the chosen checkpoint",
    "audit_near_copy_ratios": "Privacy audit: near-copy distance ratios of the unfiltered output",
    "audit_membership_scores": "Privacy audit: membership score per patient, training vs unseen",
}


#: figures of the whole experiment
RESULT_FIGURES = {
    "learning_curve": "Learning curve: test AUC per arm by training fraction, with confidence intervals",
    "roc": "ROC curves of every classifier on the test frames",
}


#: how the report names a generator family
FAMILY_NAMES = {"dcgan": "DCGAN", "fastgan": "FastGAN-lite"}


def figure_title(name: str) -> str:
    """A figure's title in words from its name (``learning_curve``, ``samples_<tag>``, ...); an
    unknown name is spelled out."""
    if name in RESULT_FIGURES:
        return RESULT_FIGURES[name]
    for prefix, title in sorted(GAN_FIGURES.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(prefix + "_"):
            return title
    return name.replace("_", " ").capitalize()


def gan_heading(audit: Mapping[str, Any]) -> str:
    """A generator in words: family (when not the paper's DCGAN), class, training fraction, GAN seed and fold."""
    frac = audit.get("fraction")
    family = str(audit.get("generator") or "dcgan")
    what = "Generator" if family == "dcgan" else f"{FAMILY_NAMES.get(family, family)} generator"
    out = f"{what} of class {audit.get('label', '?')}, training fraction {frac:g}" if isinstance(frac, (int, float)) else \
        f"{what} of class {audit.get('label', '?')}"
    if audit.get("gan_seed"):
        out += f", GAN seed {audit['gan_seed']}"
    if audit.get("fold"):
        out += f", fold {audit['fold']}"
    return out


def several_families(results: Mapping[str, Any]) -> bool:
    """Whether the run compared generator families (or used one other than the paper's DCGAN): then every synthetic arm is named with its family."""
    return list((results.get("protocol") or {}).get("generators") or ["dcgan"]) != ["dcgan"]


def question_arm(q: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    """A question's arm as the report names it: ``real+synthetic [FastGAN-lite]`` when families are compared."""
    g = q.get("generator")
    return f"{q['arm']} [{FAMILY_NAMES.get(g, g)}]" if g and several_families(results) else str(q["arm"])


def question_baseline(q: Mapping[str, Any]) -> str:
    """A question's baseline as the report names it: with its family for a comparison of families (c)."""
    g = q.get("baseline_generator")
    return f"{q['baseline']} [{FAMILY_NAMES.get(g, g)}]" if g else str(q["baseline"])


def gate_word(gate: Mapping[str, Any]) -> str:
    """pass / FAIL / insufficient evidence: the audit's decision where `lusynth audit` made one."""
    decision = gate.get("decision")
    if decision in ("pass", "fail", "insufficient_evidence"):
        return {"pass": "pass", "fail": "FAIL", "insufficient_evidence": "insufficient evidence"}[decision]
    return "pass" if gate.get("passed") else "FAIL"


def generators_of(entries: Sequence[Mapping[str, Any]] | None, family: str, fraction: float) -> list[Mapping[str, Any]]:
    """The audit (or withheld) entries of one family's generators at one training fraction (an entry
    without a family, written before FastGAN, is a DCGAN's)."""
    return [a for a in entries or [] if str(a.get("generator") or "dcgan") == family and a.get("fraction") == fraction]


class RunPaths:
    """Shows paths relative to the run directory (``results['run']['run_dir']``) in any text."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        self.base = (results.get("run") or {}).get("run_dir")

    def path(self, p: Any) -> str:
        return "n/a" if p is None else display_path(p, self.base)

    def text(self, s: str) -> str:
        """Free text (a gate reason, a note) with the run directory's absolute prefix removed."""
        if not self.base:
            return s
        return s.replace(self.base.rstrip("/") + "/", "").replace(self.base, ".")
