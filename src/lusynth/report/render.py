"""Write the evaluation report: one self-contained HTML (PNGs inlined as base64), Markdown, JSON.

:func:`write_report` returns everything a KFP component needs to publish the report: the paths
of the HTML, Markdown and JSON files, a flat dict of headline metrics (for ``Metrics``) and the
ROC points of every classifier (for ``ClassificationMetrics.log_roc_curve``).
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lusynth.atomic import dumps_json
from lusynth.keys import family_tag
from lusynth.util import display_path

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
JSON_FILE = "report.json"
FIGURES_DIR = "figures"


@dataclass
class ReportArtifacts:
    """Files written and the numbers a pipeline component logs."""

    html: Path
    markdown: Path
    json: Path
    figures: dict[str, Path] = field(default_factory=dict)
    headline_metrics: dict[str, float] = field(default_factory=dict)
    roc: dict[str, dict[str, list[float]]] = field(default_factory=dict)


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


def _slug(text: str) -> str:
    """A metric-name part (MLflow and KFP take letters, digits, ``_ - .``): ``real+synthetic [fastgan]`` -> ``real_plus_synthetic_fastgan``."""
    text = text.replace("+", "_plus_").replace("=", "").replace("[", "").replace("]", "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip())


def question_key(q: Mapping[str, Any]) -> str:
    """A question's metric name: ``qa_auc_diff_real_plus_synthetic_vs_real_f0.5``, with the family after
    the arm when not the paper's DCGAN (the DCGAN's names as before families) and, for (c), the
    baseline's family: ``qc_auc_diff_real_plus_synthetic_fastgan_vs_real_plus_synthetic_dcgan_f0.5``."""
    family = family_tag(_slug(q.get("generator") or ""), "_")
    versus = _slug(q["baseline"]) + (f"_{_slug(q['baseline_generator'])}" if q.get("baseline_generator") else "")
    return f"q{q['question']}_{q['metric']}_diff_{_slug(q['arm'])}{family}_vs_{versus}_f{q['fraction']:g}"


def all_questions(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The answered questions in the report's order: (a) and (b) per family, then the family comparisons (c)."""
    return [*results.get("questions", []), *results.get("comparisons", [])]


def headline_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """Flat ``name -> number`` (KFP Metrics / MLflow): table cells, paired differences, audits."""
    out: dict[str, float] = {}
    table = results.get("table") or {}
    for row in table.get("rows", []):
        for arm, cell in row["cells"].items():
            for m, v in cell.items():
                out[f"{m}_{_slug(arm)}_f{row['fraction']:g}"] = v["mean"]
    for q in all_questions(results):
        key = question_key(q)
        out[key] = q["estimate"]
        out[f"{key}_lo"], out[f"{key}_hi"] = q["ci"]
        out[f"{key}_p"] = q["p_value"]
        out[f"{key}_superior"] = 1.0 if q["verdict"] == "superior" else 0.0
        out[f"{key}_non_inferior"] = 1.0 if q["verdict"] in ("non-inferior", "superior") else 0.0
    for a in results.get("audits", []):
        for group in ("fidelity", "privacy"):
            for k, v in a[group].items():
                out[f"{_slug(a['name'])}_{k}"] = v
        out[f"{_slug(a['name'])}_privacy_passed"] = 1.0 if a["gate"]["passed"] else 0.0
    for e in results.get("fidelity_families") or []:  # per-patient fidelity per family, with its interval over splits
        for quantity, est in e.items():
            if isinstance(est, Mapping) and "estimate" in est:  # the entry's estimates, whichever it has
                key = f"fidelity_patient_{quantity}_{_slug(e['generator'])}_f{e['fraction']:g}"
                out[key] = est["estimate"]
                if est.get("ci") and est["ci"][0] is not None:
                    out[f"{key}_lo"], out[f"{key}_hi"] = est["ci"]
    gate = results.get("privacy_gate") or {}
    if gate.get("passed") is not None:
        out["privacy_gate_passed"] = 1.0 if gate["passed"] else 0.0
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and v is not None and math.isfinite(float(v))}


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _sig(v: Any) -> str:
    """Three significant digits (MMD², KID, FID span orders of magnitude)."""
    if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return "n/a"
    return f"{float(v):.3g}"


def _has_interval(lo: Any, hi: Any) -> bool:
    """Whether both bounds are numbers (an estimate with no spread has NaN bounds: lusynth.stats.inference.combine)."""
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi))


def _interval(lo: Any, hi: Any, too_few: bool | None) -> str:
    if too_few:
        return "[too few patients]"
    if not _has_interval(lo, hi):
        return "[no interval]"  # e.g. no spread between the splits to build one from (lusynth.stats.inference.combine)
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _signed(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.3f}"


def _pvalue(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _g(v: Any) -> str:
    """A fraction or margin as written in the parameters (``0.5``, ``1``)."""
    return f"{v:g}" if isinstance(v, (int, float)) else "n/a"


def _pct(level: Any) -> str:
    """A level as a percentage: 95, 97.5 (a Bonferroni-split level keeps its half per cent)."""
    return f"{round(float(level if isinstance(level, (int, float)) else 0.95) * 100, 1):g}"


# ---------------------------------------------------------------------------------------------
# words for what the tables and figures show

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
    return (f"{label}_f{fraction:g}" + (f"_g{gan_seed}" if gan_seed else "") + (f"_k{fold}" if fold else "")
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


# ---------------------------------------------------------------------------------------------
# a report is a list of blocks, written out as Markdown or HTML by the same code path


@dataclass(frozen=True)
class _Block:
    kind: str  # h1 h2 h3 p ul table kv figure details
    text: str = ""
    items: tuple[Any, ...] = ()
    header: tuple[str, ...] = ()
    cls: str = ""


def _h(level: int, text: str) -> _Block:
    return _Block(f"h{level}", text)


def _p(text: str, cls: str = "") -> _Block:
    return _Block("p", text, cls=cls)


def _ul(items: Sequence[str]) -> _Block:
    return _Block("ul", items=tuple(items))


def _table(header: Sequence[str], body: Sequence[Sequence[str]], cls: str = "") -> _Block:
    return _Block("table", header=tuple(header), items=tuple(tuple(r) for r in body), cls=cls)


def _kv(rows: Sequence[tuple[str, str]], cls: str = "") -> _Block:
    return _Block("kv", items=tuple(rows), cls=cls)


class _Paths:
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


def metadata_rows(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What run this report is of: date (UTC), commit, run ids, data digest, run directory (by name)."""
    run, cfg = results.get("run") or {}, results.get("config") or {}
    rows = [("date (UTC)", run.get("date_utc") or "not recorded"),
            ("git commit", run.get("git_commit") or "not recorded")]
    mlflow = run.get("mlflow_run_id") or cfg.get("mlflow_run_id")
    rows.append(("MLflow run (evaluate)", mlflow or "not tracked"))
    for key, label in (("pipeline_run_id", "MLflow pipeline run"), ("kfp_run_id", "KFP run")):
        if run.get(key):
            rows.append((label, str(run[key])))
    rows.append(("data: frame store digest", str(run.get("frames_digest") or cfg.get("frames_digest") or "not recorded")))
    if run.get("run_dir"):
        rows.append(("run directory", f"{os.path.basename(str(run['run_dir']).rstrip('/'))} (paths below are relative to it)"))
    return rows


def question_sentences(results: Mapping[str, Any]) -> list[str]:
    """One plain sentence per question, (a) and (b) then the family comparisons (c): verdict, effect
    with CI, p-value, and (if inconclusive) the detectable difference; then why any was not asked."""
    out = []
    for q in all_questions(results):
        lvl = _pct(q["level"])
        if q.get("ci_label"):
            ci = "too few patients for an interval"
        elif not _has_interval(*q["ci"]):
            ci = f"no interval: {q.get('reason', 'no standard error')}"
        else:
            ci = f"{lvl}% CI {_signed(q['ci'][0])} to {_signed(q['ci'][1])}"
        test = ("superiority" if q["hypothesis"] == "superiority" else f"non-inferiority, margin {q['margin']:g}")
        s = (f"({q['question']}) {question_arm(q, results)} vs {question_baseline(q)}, {q['endpoint']} at fraction {q['fraction']:g}: "
             f"{q['verdict'].upper()}; difference {_signed(q['estimate'])} ({ci}; one-sided p = {_pvalue(q['p_value'])}, {test})")
        if q["verdict"] == "inconclusive" and q.get("min_detectable_difference") is None:
            s += "; no detectable difference can be stated at this sample size"
        elif q["verdict"] == "inconclusive" and q["min_detectable_difference"] >= 1.0:
            # a difference of two proportions is at most 1: none within the range is detectable
            s += (f"; at this sample size not even the largest possible difference (1) would be detected with "
                  f"{int(round(results.get('protocol', {}).get('power', 0.8) * 100))}% power "
                  f"(minimum detectable {_fmt(q['min_detectable_difference'])})")
        elif q["verdict"] == "inconclusive":
            s += (f"; at this sample size only a true difference of {_fmt(q['min_detectable_difference'])} or more would be "
                  f"detected with {int(round(results.get('protocol', {}).get('power', 0.8) * 100))}% power")
        if q.get("baseline_generator"):
            s += budget_clause(results, str(q["generator"]), str(q["baseline_generator"]), q["fraction"])
        out.append(s + ".")
    out += [*results.get("skipped_questions", []), *results.get("skipped_comparisons", [])]
    return out


#: a family trained at about the reference family's budget: its GANs' median training seconds within this factor of the reference's
EQUAL_BUDGET = 1.25


def budget_ratios(results: Mapping[str, Any], family: str, reference: str, fraction: float) -> dict[str, float]:
    """``{"seconds": r, "tflop": r}``: the median training cost of ``family``'s GANs at ``fraction`` over
    ``reference``'s (:func:`lusynth.evaluate.run.training_cost`), each where both have it."""
    audits = results.get("audits")
    mine, theirs = ([c for a in _generators_of(audits, g, fraction) if (c := a.get("training"))] for g in (family, reference))
    out = {}
    for name in ("seconds", "tflop"):
        a, b = ([float(c[name]) for c in costs if c.get(name)] for costs in (mine, theirs))
        if a and b:
            out[name] = statistics.median(a) / statistics.median(b)
    return out


def budget_clause(results: Mapping[str, Any], family: str, reference: str, fraction: float) -> str:
    """The budget a family comparison (c) was made at, for its sentence: "; AT UNEQUAL COMPUTE: the FastGAN-lite
    GANs trained a median 2.1x the DCGAN's seconds ..." when the medians of the training seconds differ by more
    than a factor :data:`EQUAL_BUDGET` (a family given more compute may win by the compute alone), else "; at
    about equal compute: ..."; '' where the GANs' costs were not recorded."""
    r = budget_ratios(results, family, reference, fraction)
    if "seconds" not in r:
        return ""
    name, ref = FAMILY_NAMES.get(family, family), FAMILY_NAMES.get(reference, reference)
    flops = f" and {r['tflop']:.2g}x its TFLOP" if "tflop" in r else ""
    equal = 1 / EQUAL_BUDGET <= r["seconds"] <= EQUAL_BUDGET
    what = "at about equal compute" if equal else "AT UNEQUAL COMPUTE"
    clause = f"; {what}: the {name} GANs trained a median {r['seconds']:.2g}x the {ref}'s seconds{flops}"
    if not equal and family == "fastgan":
        clause += " (gan.fastgan_step_share sets FastGAN-lite's share of the DCGAN's steps)"
    return clause


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


def _protocol_line(results: Mapping[str, Any]) -> str:
    p, n = results.get("protocol") or {}, results.get("n_patients") or {}
    if not p:
        return ""
    return (f"Test patients: {n.get('positive', '?')} positive, {n.get('negative', '?')} negative. Protocol: {p.get('folds', '?')} "
            f"fold(s) x {p.get('repeats', '?')} repeat(s), {p.get('gan_seeds', '?')} GAN seed(s), {p.get('classifier_seeds', '?')} "
            f"classifier seed(s)" + (f", generator families {', '.join(FAMILY_NAMES.get(g, g) for g in p['generators'])} on the same "
                                    f"patients (each family's primary test at the Bonferroni level {_pct(p.get('primary_level'))}%)"
                                    if len(p.get("generators") or []) > 1 else "") + f". Primary endpoint: {p.get('primary_endpoint', '?')} at fraction {_g(p.get('primary_fraction'))}, "
            f"pre-specified; non-inferiority margin {_g(p.get('margin'))}; intervals below {p.get('min_patients_per_class', '?')} "
            "patients per class are labelled 'too few patients'." + (f" Design: {p['design']}; {p.get('n_patients_tested', '?')} of "
                                                                     f"{p.get('n_patients_total', '?')} patients tested out of fold."
                                                                     if p.get("design") else ""))


def _question_rows(q: Mapping[str, Any], results: Mapping[str, Any], paths: _Paths) -> list[tuple[str, str]]:
    """One question as label/value rows: verdict, effect with CI, patients per class, folds and
    seeds, the margin, power; then the method and its notes."""
    p, n = results.get("protocol") or {}, results.get("n_patients") or {}
    power = p.get("power", 0.8)
    lvl = _pct(q.get("level", p.get("level")))
    ci = q.get("ci") or [None, None]
    superiority = q.get("hypothesis") == "superiority"
    rows = [("verdict", f"{str(q.get('verdict', '?')).upper()}: {paths.text(str(q.get('reason', '')))}"),
            (f"effect ({q.get('endpoint', '?')})",
             f"{question_arm(q, results)} minus {question_baseline(q)} at training fraction {_g(q.get('fraction'))}: {_signed(q.get('estimate'))}, "
             f"{lvl}% CI {_interval(ci[0], ci[1], q.get('ci_label') is not None)}; one-sided p = {_pvalue(q.get('p_value'))}"),
            ("test patients per class", f"{n.get('positive', '?')} positive, {n.get('negative', '?')} negative "
                                        f"(an interval needs at least {p.get('min_patients_per_class', '?')} per class)"),
            ("folds and seeds", f"{p.get('folds', '?')} fold(s) x {p.get('repeats', '?')} repeat(s); {p.get('gan_seeds', '?')} GAN "
                                f"seed(s), {p.get('classifier_seeds', '?')} classifier seed(s); {q.get('n_splits', '?')} split(s), "
                                f"{q.get('n_runs', '?')} training run(s)"),
            ("hypothesis and margin", "superiority: is the difference above 0?" if superiority else
             f"non-inferiority with margin δ = {_g(q.get('margin'))}: is the difference above -{_g(q.get('margin'))}?"),
            ("power", f"{_fmt(q['power'] * 100, 0) + '%' if q.get('power') is not None else 'n/a'} to show "
                      f"{'superiority when the true gain is ' if superiority else 'non-inferiority when the true difference is '}"
                      f"{_signed(q.get('power_against'))}; minimum detectable difference at {_pct(power)}% power: "
                      f"{_fmt(q.get('min_detectable_difference'))}"),
            ("method", f"{q.get('method', '?')}; training variance included: {q.get('training_variance', '?')}; "
                       f"{q.get('n_resamples', '?')} resamples, {q.get('n_undefined', '?')} undefined")]
    per_fold = q.get("per_fold")
    if isinstance(per_fold, list) and per_fold and all(isinstance(x, Mapping) for x in per_fold):
        # each split's own difference (Analysis.per_fold; absent with one split): how consistent the effect is across folds
        rows.append(("per fold", "; ".join(f"fold {x.get('fold', i)}" + (f" (repeat {x['repeat']})" if x.get("repeat") else "")
                                           + f": {_signed(x.get('estimate'))}" for i, x in enumerate(per_fold))))
    rows += [("note", paths.text(str(x))) for x in q.get("notes", [])]
    return rows


def table_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The per-arm table: one row per training fraction x arm, one column per metric (estimate and CI)."""
    t = results["table"]
    metrics = [m for m in t.get("metrics", []) if m]
    level = t.get("level", "patient")
    header = ["training fraction", "arm", "training runs"] + [metric_header(m, level) for m in metrics]
    body = []
    for row in t.get("rows", []):
        for arm in t.get("arms", []):
            cell = row.get("cells", {}).get(arm)
            if not cell:
                continue
            runs = next((c.get("n_runs") for c in cell.values() if isinstance(c, Mapping) and c.get("n_runs") is not None), None)
            body.append([f"{row['fraction']:g}", arm, _fmt(runs)] +
                        [f"{_fmt(cell[m]['mean'])} {_interval(cell[m].get('lo'), cell[m].get('hi'), cell[m].get('too_few_patients'))}"
                         if m in cell else "" for m in metrics])
    return header, body


def _secondary_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    lvl = _pct((results.get("protocol") or {}).get("level", 0.95))
    header = ["question", "training fraction", "endpoint", "difference (arm − baseline)", f"{lvl}% CI", "one-sided p", "p (Holm)", "verdict"]
    body = []
    for q in all_questions(results):
        name = f"{q['question']} [{FAMILY_NAMES.get(q['generator'], q['generator'])}]" if q.get("generator") and several_families(results) \
            else q["question"]
        for s in q.get("secondary", []):
            if s.get("baseline_generator"):  # (c): the arm varies among the secondaries
                name = f"c: {question_arm(s, results)} − {question_baseline(s)}"
            ci = s.get("ci") or [None, None]
            body.append([name, f"{s['fraction']:g}", s["endpoint"], _signed(s.get("estimate")),
                         _interval(ci[0], ci[1], s.get("ci_label") is not None), _pvalue(s.get("p_value")), _pvalue(s.get("p_value_holm")),
                         s.get("verdict", "?")])
    return header, body


_FAMILIES_NOTE = ("Each family's GANs were trained on the same folds, classes and patients, and its synthetic arms scored on the "
                  "same test patients against the same real classifiers. Verdicts in capitals at the primary fraction, "
                  "secondary (exploratory) ones at the other fractions; privacy: the audit's "
                  "decision of every generator of the family at that fraction (all classes and folds); copy rate: the mean over those "
                  "generators of the share of their unfiltered frames that the patient audit counts as near-copies of a training "
                  "frame (about the audit's calibration percentile for a generator that copies no more than new patients resemble "
                  "training ones; far above it, what a generator closer to real may be buying its closeness with); fidelity: the mean over those "
                  "generators of the leave-one-patient-out 1-NN accuracy of their frames against the test patients in the real classifier's "
                  "embedding, beside the same test for the validation patients (what new real patients score): with a few patients "
                  "per fold, new real patients read far from 0.5 and a collapsed generator can read 0.5 exactly, so compare a "
                  "family with that floor, not with 0.5; the floor is a lower bound, not the ideal: a perfect generator (one frame "
                  "from each of many new patients) reads above it, on the phantom (benchmarks/results) by about 0.06 with 6 test "
                  "patients per class and 0.2 with 2-3; fine detail: the mean absolute Laplacian of the synthetic frames divided by "
                  "the real test frames' (1 = as much detail at the 1-2 pixel scale as real frames; well below 1, blurred frames, "
                  "which on few patients can read closer to unseen patients than other real patients do).")


_COMPARISON_NOTE = ("Head to head on the same test patients: the family's real+synthetic classifiers minus the DCGAN's, paired "
                    "per fold (the same real frames and bootstrap resamples), by the same method as (a) and (b). Non-inferiority "
                    "with the protocol's margin answers \"at least as good as the DCGAN\"; with several other families each is "
                    "decided at the Bonferroni level. Other fractions, metrics and the synthetic-only arm are in the secondary table. "
                    "The verdict's sentence states the compute each family had (the median training seconds and TFLOP of its "
                    "GANs at that fraction over the DCGAN's): at unequal compute a family may win by the compute alone.")


def family_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per generator family and training fraction: the questions' verdicts (primary
    fraction; with a (c) column when families were compared head to head: "reference" in the
    reference family's rows), the privacy decisions of its generators, the mean copy rate of their
    unfiltered output (the patient audit's), their mean patient-level 1-NN accuracy beside the
    real floor's (``fidelity_patient``; "-" where no generator of the row has one) and their frames'
    mean fine detail relative to the real test frames': fidelity, copying and blur side by side,
    because on few patients a generator gets closer to unseen patients mainly by copying training
    ones or by blurring them together (benchmarks/results/README.md, "Checkpoint selection",
    "Half-size FastGAN")."""
    p = results.get("protocol") or {}
    families = list(p.get("generators") or [])
    fractions: list[Any] = sorted({float(a["fraction"]) for a in (*results.get("audits", []), *results.get("withheld", []))
                                   if a.get("fraction") is not None})
    comparisons = {q["generator"]: q for q in results.get("comparisons", [])}
    ref = str(next((q.get("baseline_generator") for q in comparisons.values()), ""))
    asked = ["a", "b"] + (["c"] if comparisons else [])
    header = ["generator family", "training fraction", "(a) real+synthetic vs real", "(b) synthetic vs real",
              *([f"(c) real+synthetic vs {FAMILY_NAMES.get(ref, ref)}'s"] if comparisons else []), "privacy (per generator)",
              "copy rate, unfiltered (↓)", "1-NN accuracy embedding, per patient: synthetic / real floor",
              "fine detail, synthetic ÷ real (1 = real)"]
    body = []
    for g in families:
        qs = {q["question"]: q for q in results.get("questions", []) if q.get("generator") == g}
        if g in comparisons:
            qs["c"] = comparisons[g]
        for f in fractions or [p.get("primary_fraction")]:
            verdicts = []
            for k in asked:
                q = qs.get(k) or {}
                if k == "c" and g == ref:
                    verdicts.append("reference")
                elif q.get("fraction") == f:
                    verdicts.append(f"{q['verdict'].upper()} {_signed(q['estimate'])}")
                else:
                    # another fraction: the question's secondary on the same arm and endpoint (Holm-adjusted, exploratory)
                    s = next((x for x in q.get("secondary", [])
                              if x.get("fraction") == f and x.get("metric") == q.get("metric") and x.get("arm", q.get("arm")) == q.get("arm")), None)
                    verdicts.append(f"{s['verdict']} {_signed(s['estimate'])} (secondary)" if s else "")
            mine, held = _generators_of(results.get("audits"), g, f), _generators_of(results.get("withheld"), g, f)
            words = [_gate_word(a.get("gate") or {}) for a in mine] + ["withheld (memorises)"] * len(held)
            privacy = ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words)) if words else "-"
            body.append([FAMILY_NAMES.get(g, g), _g(f), *verdicts, privacy, _mean_copy_rate(mine), _patient_nn1_pair(mine),
                         _mean_sharpness_ratio(mine)])
    return header, body


_FIDELITY_NOTE = ("Each generator's frames against its fold's test patients of its class: the leave-one-patient-out 1-NN accuracy "
                  "in the fold's real classifier's embedding (lower is closer to real; the real floor is what the fold's validation "
                  "patients, new real patients, read), with intervals. A cell is one generator: one outer split, class, fraction and GAN seed. Each "
                  "split's value is the mean over its cells; the estimate is the mean over splits, with the Nadeau-Bengio corrected "
                  "t interval over splits (as for the questions; none from a single split). − real floor: the family minus the "
                  "validation patients in the same cells. − reference: the family minus the reference family in the cells both "
                  "measured (same split, class and GAN seed), so negative means closer to real than the reference. Cells: measured "
                  "cells over splits; a class needs 2 test and 2 validation patients in a split to be measured. Fine detail: "
                  "the same estimate of the frames' mean absolute Laplacian relative to the real test frames', over every "
                  "audited generator (well below 1: blurred frames, which can read closer to new patients than real ones do). "
                  "Training per GAN: the medians of its optimiser steps, its compute (steps x batch x the family's FLOPs per "
                  "image and step, machine-independent) and the seconds those steps took on the machine that trained it "
                  "(evaluations excluded): the budget each family had.")


def fidelity_family_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per generator family and training fraction: its per-patient 1-NN accuracy, minus the
    real floor and minus the reference family, each with its interval over the outer splits
    (``fidelity_families``, :func:`lusynth.stats.fidelity.family_fidelity`)."""
    entries = list(results.get("fidelity_families") or [])
    ref = str(entries[0].get("reference", "dcgan")) if entries else "dcgan"
    level = next((e[q]["level"] for e in entries for q in ("synthetic", "minus_floor") if e.get(q, {}).get("level")), 0.95)
    header = ["generator family", "training fraction", "cells (splits)", f"1-NN accuracy per patient [{_pct(level)}% CI] (↓)",
              "− real floor", f"− {FAMILY_NAMES.get(ref, ref)}", "fine detail, synthetic ÷ real (1 = real)",
              "training per GAN, median: steps · TFLOP · seconds"]

    def cell(e: Mapping[str, Any] | None, signed: bool) -> str:
        if not e:
            return "-"
        ci = e.get("ci") or [None, None]
        return f"{(_signed if signed else _fmt)(e.get('estimate'))} {_interval(ci[0], ci[1], False)}"

    body = [[FAMILY_NAMES.get(e["generator"], e["generator"]), _g(e["fraction"]),
             f"{n['n_cells']} ({n['n_splits']})" if (n := e.get("synthetic")) else "0", cell(e.get("synthetic"), False),
             cell(e.get("minus_floor"), True), "reference" if e["generator"] == ref else cell(e.get("minus_reference"), True),
             cell(e.get("fine_detail"), False),
             _training_cost(_generators_of(results.get("audits"), e["generator"], e["fraction"]))]
            for e in entries]
    return header, body


def _generators_of(entries: Sequence[Mapping[str, Any]] | None, family: str, fraction: float) -> list[Mapping[str, Any]]:
    """The audit (or withheld) entries of one family's generators at one training fraction (an entry
    without a family, written before FastGAN, is a DCGAN's)."""
    return [a for a in entries or [] if str(a.get("generator") or "dcgan") == family and a.get("fraction") == fraction]


def _training_cost(audits: Sequence[Mapping[str, Any]]) -> str:
    """"steps · TFLOP · seconds": the medians over ``audits`` of their GANs' training cost
    (:func:`lusynth.evaluate.run.training_cost`), "-" for a part none has."""
    costs = [c for a in audits if (c := a.get("training"))]

    def median(name: str, spec: str) -> str:
        values = [float(c[name]) for c in costs if c.get(name) is not None]
        return format(statistics.median(values), spec) if values else "-"

    return "-" if not costs else f"{median('steps', '.0f')} · {median('tflop', '.3g')} · {median('seconds', '.0f')}"


def _mean_copy_rate(audits: Sequence[Mapping[str, Any]]) -> str:
    """The mean over ``audits`` of the patient audit's copy rate (the share of a generator's unfiltered
    frames nearer a training frame than unseen patients' frames come), "-" where none has one."""
    rates = [float(r) for a in audits if (r := ((a.get("patient_audit") or {}).get("copy_rate") or {}).get("copy_rate")) is not None]
    return _fmt(sum(rates) / len(rates)) if rates else "-"


def _mean_sharpness_ratio(audits: Sequence[Mapping[str, Any]]) -> str:
    """The mean over ``audits`` of the synthetic frames' fine detail divided by the real test frames'
    (:func:`lusynth.metrics.fidelity.sharpness`), "-" where none has both."""
    ratios = [float(f["sharpness"]) / float(f["sharpness_holdout"]) for a in audits
              if (f := a.get("fidelity") or {}).get("sharpness") is not None and f.get("sharpness_holdout")]
    return _fmt(sum(ratios) / len(ratios), 2) if ratios else "-"


def _patient_nn1_pair(audits: Sequence[Mapping[str, Any]]) -> str:
    """"synthetic / real floor": the mean over ``audits`` of the embedding's leave-one-patient-out 1-NN
    accuracy of the synthetic frames and of the validation patients (both against the test patients)."""
    pairs = [(float(e["synthetic"]["nn1_accuracy"]), float(e["real_floor"]["nn1_accuracy"]))
             for a in audits if (e := (a.get("fidelity_patient") or {}).get("embedding"))]
    if not pairs:
        return "-"
    return f"{_fmt(sum(p[0] for p in pairs) / len(pairs))} / {_fmt(sum(p[1] for p in pairs) / len(pairs))}"


def _gate_word(gate: Mapping[str, Any]) -> str:
    """pass / FAIL / insufficient evidence: the audit's decision where `lusynth audit` made one."""
    decision = gate.get("decision")
    if decision in ("pass", "fail", "insufficient_evidence"):
        return {"pass": "pass", "fail": "FAIL", "insufficient_evidence": "insufficient evidence"}[decision]
    return "pass" if gate.get("passed") else "FAIL"


def _pair(a: Any, b: Any, fmt: Any = _fmt) -> str:
    return f"{fmt(a)} / {fmt(b)}" if b is not None else fmt(a)


def _fidelity_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Frame-level fidelity per generator (all in the real classifier's feature space or pixels)."""
    header = ["generator", "MMD² pixels (↓)", "MMD² embedding (↓)", "1-NN accuracy pixels (0.5 ideal)",
              "1-NN accuracy embedding (0.5 ideal)", "FID embedding (↓)", "KID embedding (↓)", "confidence synthetic / real test (↑)",
              "fine detail synthetic / real test (equal ideal)"]
    body = []
    for a in results.get("audits", []):
        f = a.get("fidelity") or {}
        body.append([a["name"], _sig(f.get("mmd_pixels")), _sig(f.get("mmd_embed")), _fmt(f.get("nn1_pixels")), _fmt(f.get("nn1_embed")),
                     _sig(f.get("fid_embed")), _sig(f.get("kid_embed")), _pair(f.get("confidence"), f.get("confidence_holdout")),
                     _pair(f.get("sharpness"), f.get("sharpness_holdout"), _sig)])
    return header, body


def _privacy_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Frame-level privacy figures per generator, with the gate's word."""
    header = ["generator", "near-copy rate (↓)", "distance attack AUC (0.5 ideal)", "discriminator attack AUC (0.5 ideal)",
              "median distance to training: synthetic / real test (↑)", "privacy gate"]
    body = []
    for a in results.get("audits", []):
        v = a.get("privacy") or {}
        body.append([a["name"], _fmt(v.get("memorisation_rate")), _fmt(v.get("distance_mia_auc")), _fmt(v.get("discriminator_mia_auc")),
                     _pair(v.get("median_dcr_synthetic"), v.get("median_dcr_holdout"), _sig), _gate_word(a.get("gate") or {})])
    return header, body


def _ci(v: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not v:
        return "-"
    value = v.get("tpr", v.get("auc", v.get("copy_rate")))
    return f"{_fmt(value, digits)} [{_fmt(v.get('lo'), digits)}, {_fmt(v.get('hi'), digits)}]"


def _patient_audit_rows(results: Mapping[str, Any]) -> tuple[tuple[list[str], list[list[str]]], tuple[list[str], list[list[str]]]]:
    """From `lusynth audit` (patient level): per generator the decision and memorisation; per
    generator x membership attack its AUC, p and TPR at low FPR."""
    h1 = ["generator", "decision", "patients (training / unseen)", "copy rate [95% CI] (↓)",
          "closer to a training than an unseen patient (0.5 ideal; patient p)"]
    h2 = ["generator", "attack", "membership AUC [CI] (0.5 ideal)", "permutation p", "TPR at 1% FPR [CI] (↓)", "TPR at 10% FPR [CI] (↓)"]
    b1, b2 = [], []
    for a in results.get("audits", []):
        pa = a.get("patient_audit")
        if not pa:
            continue
        closer = pa.get("closer_to_training") or {}
        pts = (pa.get("n") or {}).get("patients") or {}
        b1.append([a["name"], str(pa.get("decision", "?")).replace("_", " "), f"{pts.get('member', '?')} / {pts.get('nonmember', '?')}",
                   _ci(pa.get("copy_rate")), f"{_fmt(closer.get('share'))} ({_pvalue(closer.get('patient_permutation_p_value'))})"])
        for attack, m in sorted((pa.get("membership") or {}).items()):
            tpr = m.get("tpr_at_fpr", {})
            b2.append([a["name"], attack, _ci(m), _pvalue(m.get("p_value")), _ci(tpr.get("0.01"), 2), _ci(tpr.get("0.1"), 2)])
    return (h1, b1), (h2, b2)


_WITHHELD_NOTE = ("`generate` released no frame of these generators: its near-copy filter rejected almost everything they drew, "
                  "so they are treated as memorising their training patients (the privacy audit of their unfiltered output says "
                  "what it can show). The classifiers that needed their frames were not trained, and every "
                  "estimate that involves those cells is over the other folds only (the 'per fold' rows show which): read it as "
                  "conditional on a generator that does not memorise. A withheld generator fails the privacy gate and is registered "
                  "with no alias.")


def withheld_lines(results: Mapping[str, Any]) -> list[str]:
    """One line per withheld generator (why, and the audit's decision on its unfiltered output) and per classifier not trained."""
    out = []
    for w in results.get("withheld", []):
        pa = w.get("patient_audit") or {}
        audit = f" The privacy audit of its unfiltered output: {str(pa['decision']).replace('_', ' ')}." if pa.get("decision") else ""
        out.append(f"{w['name']}: withheld: {w['reason']}.{audit}")
    out += [f"classifier {c['name']}: not trained ({c['reason']})" for c in results.get("skipped_classifiers", [])]
    return out


_PATIENT_AUDIT_NOTE = ("`lusynth audit` of each GAN's unfiltered output: members = the patients that trained it, non-members = "
                       "unseen (holdout) patients, near-copy threshold calibrated on the validation patients. PASS only when every "
                       "upper bound is under its limit, FAIL when a lower bound is over it, otherwise insufficient evidence. "
                       "TPR: the share of training patients an attacker finds at a 1% or 10% false positive rate.")


def _patient_fidelity_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """Rows per generator x feature space, and a note per generator that could not be measured."""
    header = ["generator", "features", "1-NN accuracy: synthetic (read against the floor)", "1-NN accuracy: real floor", "MMD² synthetic (p)",
              "MMD² real floor (p)", "test / floor patients"]
    body, skipped = [], []
    for a in results.get("audits", []):
        f = a.get("fidelity_patient") or {}
        for space in ("pixels", "embedding"):
            if space in f:
                syn, floor = f[space]["synthetic"], f[space]["real_floor"]
                body.append([a["name"], space, _fmt(syn.get("nn1_accuracy")), _fmt(floor.get("nn1_accuracy")),
                             f"{_sig(syn.get('mmd2'))} ({_pvalue(syn.get('mmd_p_value'))})",
                             f"{_sig(floor.get('mmd2'))} ({_pvalue(floor.get('mmd_p_value'))})",
                             f"{f.get('n_test_patients', '?')} / {f.get('n_floor_patients', '?')}"])
        if f.get("skipped"):
            skipped.append(f"{a['name']}: {f['skipped']}")
    return header, body, skipped


_PATIENT_FIDELITY_NOTE = ("Synthetic frames vs the test patients' frames, beside validation patients vs the same test patients (the floor: "
                          "what new real patients score; a perfect generator, drawing each frame from a new patient, reads somewhat above it). "
                          "1-NN accuracy leaves out the whole patient (0.5 = indistinguishable); MMD² uses "
                          "one bandwidth fixed from real training frames, so values compare across GANs; p from permutations that move a "
                          "patient's frames together.")


def _config_lines(results: Mapping[str, Any], paths: _Paths) -> list[str]:
    cfg = results.get("config", {})
    lines = [f"frames: {paths.path(cfg.get('frames_dir'))} ({cfg.get('frames_digest')})"]
    for c in results.get("classifiers", []):
        lines.append(f"classifier {c['name']}: {paths.path(c.get('dir'))}; hyper-parameters {c.get('hyperparams')}; "
                     f"threshold {_fmt(c.get('val_threshold'))}")
    for a in results.get("audits", []):
        lines.append(f"synthetic {a['name']}: {paths.path(a.get('synthetic_dir'))} ({a.get('synthetic_digest')}); "
                     f"GAN {paths.path(a['gan_dir']) if a.get('gan_dir') else 'n/a'}")
    return lines


def _figures(names: Sequence[str], results: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]], list[str]]:
    """The figures in reading order: the experiment's, then per generator, then any other."""
    names = list(names)
    main = [n for n in RESULT_FIGURES if n in names]
    per_gan: list[tuple[str, list[str]]] = []
    used = set(main)
    for a in results.get("audits", []):
        tag = figure_tag(str(a.get("label")), float(a.get("fraction") or 0), int(a.get("gan_seed") or 0), int(a.get("fold") or 0),
                         str(a.get("generator") or "dcgan"))
        mine = [f"{prefix}_{tag}" for prefix in GAN_FIGURES if f"{prefix}_{tag}" in names and f"{prefix}_{tag}" not in used]
        if mine:
            per_gan.append((gan_heading(a), mine))
            used |= set(mine)
    return main, per_gan, [n for n in names if n not in used]


def _blocks(results: Mapping[str, Any], figure_names: Sequence[str]) -> list[_Block]:
    """The whole report as blocks, in reading order."""
    paths = _Paths(results)
    t = results["table"]
    out = [_h(1, "lusynth evaluation report"), _kv(metadata_rows(results), cls="meta"), _h(2, "Results")]
    if _protocol_line(results):
        out.append(_p(_protocol_line(results)))
    out.append(_ul(question_sentences(results)))
    held = withheld_lines(results)
    if held:
        out += [_h(3, "Withheld generators and skipped classifiers"), _p(_WITHHELD_NOTE), _ul([paths.text(x) for x in held])]
    for q in results.get("questions", []):
        family = f" — {FAMILY_NAMES.get(q['generator'], q['generator'])}" if q.get("generator") and several_families(results) else ""
        out += [_h(3, f"({q['question']}) {q['text']}{family}"), _kv(_question_rows(q, results, paths), cls=f"question {q.get('verdict', '')}")]
    if several_families(results):
        out += [_h(3, "Generator families side by side"), _p(_FAMILIES_NOTE), _table(*family_rows(results), cls="families")]
    if results.get("fidelity_families"):
        out += [_h(3, "Per-patient fidelity, with intervals"), _p(_FIDELITY_NOTE), _table(*fidelity_family_rows(results), cls="fidelity-families")]
    for q in results.get("comparisons", []):
        out += [_h(3, f"(c) {q['text']} — {FAMILY_NAMES.get(q['generator'], q['generator'])}"), _p(_COMPARISON_NOTE),
                _kv(_question_rows(q, results, paths), cls=f"question {q.get('verdict', '')}")]
    main, per_gan, other = _figures(figure_names, results)
    out += [_h(3, "Per arm"),
            _p(f"Test patients only (no classifier or GAN was trained on them). Cells: estimate over folds and seeds with its "
               f"{_pct(t.get('ci'))}% CI; {t.get('level', 'patient')} level; accuracy, F1, sensitivity and specificity at the threshold "
               "chosen on the validation patients. ↑: higher is better."),
            _table(*table_rows(results), cls="arms")]
    out += [_Block("figure", n, items=(figure_title(n),)) for n in main]
    sec = _secondary_rows(results)
    if sec[1]:
        out += [_h(2, "Secondary endpoints"), _p("Holm-adjusted within each question; exploratory."), _table(*sec)]
    gate = results.get("privacy_gate") or {}
    if gate.get("passed") is not None:
        out += [_p(f"Privacy gate: {'PASS' if gate['passed'] else 'FAIL'}", cls="pass" if gate["passed"] else "fail"),
                _ul([paths.text(r) for r in gate.get("reasons", [])])]
    (h1, b1), (h2, b2) = _patient_audit_rows(results)
    if b1:
        out += [_h(2, "Privacy audit (patient level)"), _p(_PATIENT_AUDIT_NOTE), _table(h1, b1), _table(h2, b2)]
    if results.get("audits"):
        out += [_h(2, "Fidelity and privacy (frame level)"), _table(*_fidelity_rows(results)), _table(*_privacy_rows(results)),
                _p("FID/KID are computed in the `real` classifier's embedding: not comparable with Inception FID/KID. "
                   "Confidence: the real classifier's mean probability of the generator's class.")]
        header, body, skipped = _patient_fidelity_rows(results)
        if body or skipped:
            out += [_h(2, "Fidelity per patient"), _p(_PATIENT_FIDELITY_NOTE)]
            out += [_table(header, body)] if body else []
            out += [_ul([f"not measured: {paths.text(s)}" for s in skipped])] if skipped else []
    if per_gan or other:
        out.append(_h(2, "Generators" if per_gan else "Other figures"))
    for heading, names in per_gan:
        out += [_h(3, heading)] + [_Block("figure", n, items=(figure_title(n),)) for n in names]
    if per_gan and other:
        out.append(_h(2, "Other figures"))
    out += [_Block("figure", n, items=(figure_title(n),)) for n in other]
    out += [_h(2, "Configuration and data"), _ul(_config_lines(results, paths)),
            _Block("details", "Evaluation parameters", items=(dumps_json(clean_json((results.get("config") or {}).get("params", {}))),))]
    return out


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    def cell(c: str) -> str:
        return c.replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in body]
    return "\n".join(lines)


def render_markdown(results: Mapping[str, Any], figures: Mapping[str, str]) -> str:
    """Markdown report; ``figures`` maps a figure name to its relative PNG path."""
    out: list[str] = []
    for b in _blocks(results, list(figures)):
        if b.kind.startswith("h"):
            out += ["#" * int(b.kind[1]) + " " + b.text, ""]
        elif b.kind == "p":
            out += [f"**{b.text}**" if b.cls in ("pass", "fail") else b.text, ""]
        elif b.kind == "ul":
            out += [f"- {x}" for x in b.items] + [""] if b.items else []
        elif b.kind == "table":
            out += [_md_table(b.header, b.items), ""]
        elif b.kind == "kv":
            out += [f"- {k}: **{v}**" if k == "verdict" else f"- {k}: {v}" for k, v in b.items] + [""]
        elif b.kind == "figure":
            out += [f"**{b.items[0]}**", "", f"![{b.items[0]}]({figures[b.text]})", ""]
        elif b.kind == "details":
            out += [f"<details><summary>{b.text}</summary>", "", "```json", b.items[0], "```", "", "</details>", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# fits 1280 px: the body is at most 1180 px wide, tables never wider than it (cells wrap, long
# identifiers break anywhere), figures scale down
_CSS = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 16px;color:#222;line-height:1.4}
h1{margin-bottom:0.3em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:0.2em}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.86em;max-width:100%}
td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top;overflow-wrap:break-word}
th{background:#f3f3f3;text-align:left;font-weight:600}td.num{text-align:right;white-space:nowrap}
table.kv th{width:13em;background:#fafafa;font-weight:normal;color:#555}table.kv{width:100%}table.kv td,li{overflow-wrap:anywhere}
table.meta{font-size:0.85em;width:auto}table.meta td,table.meta th{border:none;padding:1px 10px 1px 0}table.meta th{background:none;color:#666}
tr.verdict td{font-weight:600}.inconclusive tr.verdict td{color:#8a5a00}.superior tr.verdict td,.non-inferior tr.verdict td{color:#2a7a2a}
.inferior tr.verdict td{color:#b00020}
figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:0.3em}img{max-width:100%;height:auto;display:block}
.pass{color:#2a7a2a;font-weight:600}.fail{color:#b00020;font-weight:600}code{overflow-wrap:anywhere}
pre{background:#f7f7f7;padding:1em;overflow:auto;max-width:100%;box-sizing:border-box}"""


def _is_number(c: str) -> bool:
    return bool(c) and (c[0].isdigit() or c[0] in "+-<") and " " not in c.strip("< ")


def render_html(results: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    """Self-contained HTML: every PNG inlined as a base64 data URI."""
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
             f"<title>lusynth evaluation</title><style>{_CSS}</style></head><body>"]
    for b in _blocks(results, list(figures)):
        if b.kind.startswith("h"):
            parts.append(f"<{b.kind}>{e(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p class='{b.cls}'>{e(b.text)}</p>" if b.cls else f"<p>{e(b.text)}</p>")
        elif b.kind == "ul" and b.items:
            parts.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in b.items) + "</ul>")
        elif b.kind == "table":
            h = "".join(f"<th>{e(c)}</th>" for c in b.header)
            rows = "".join("<tr>" + "".join(f"<td class='num'>{e(c)}</td>" if _is_number(c) else f"<td>{e(c)}</td>" for c in r) + "</tr>"
                           for r in b.items)
            cls = f" class='{b.cls}'" if b.cls else ""
            parts.append(f"<table{cls}><thead><tr>{h}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "kv":
            rows = "".join(f"<tr{' class=verdict' if k == 'verdict' else ''}><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in b.items)
            parts.append(f"<table class='kv {e(b.cls)}'><tbody>{rows}</tbody></table>")
        elif b.kind == "figure":
            b64 = base64.b64encode(figures[b.text]).decode("ascii")
            parts.append(f"<figure><figcaption>{e(b.items[0])}</figcaption>"
                         f"<img alt='{e(b.items[0])}' src='data:image/png;base64,{b64}'></figure>")
        elif b.kind == "details":
            parts.append(f"<details><summary>{e(b.text)}</summary><pre>{e(b.items[0])}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out_dir: str | os.PathLike[str], results: Mapping[str, Any], figures: Mapping[str, bytes]) -> ReportArtifacts:
    """Write report.html, report.md, report.json and figures/*.png into ``out_dir`` (which exists)."""
    out_dir = Path(out_dir)
    (out_dir / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
    fig_paths: dict[str, Path] = {}
    for name, png in figures.items():
        p = out_dir / FIGURES_DIR / f"{name}.png"
        p.write_bytes(png)
        fig_paths[name] = p
    clean = clean_json(results)
    (out_dir / JSON_FILE).write_text(dumps_json(clean))
    (out_dir / MARKDOWN_FILE).write_text(render_markdown(clean, {n: f"{FIGURES_DIR}/{n}.png" for n in figures}))
    (out_dir / HTML_FILE).write_text(render_html(clean, figures))
    roc = {c["name"]: c["roc"]["frame"] for c in clean.get("classifiers", [])}
    return ReportArtifacts(html=out_dir / HTML_FILE, markdown=out_dir / MARKDOWN_FILE, json=out_dir / JSON_FILE,
                           figures=fig_paths, headline_metrics=headline_metrics(clean), roc=roc)
