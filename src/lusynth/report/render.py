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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lusynth.atomic import dumps_json

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
    return text.replace("+", "_plus_").replace(" ", "_").replace("=", "")


def headline_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """Flat ``name -> number`` (KFP Metrics / MLflow): table cells, paired differences, audits."""
    out: dict[str, float] = {}
    table = results.get("table") or {}
    for row in table.get("rows", []):
        for arm, cell in row["cells"].items():
            for m, v in cell.items():
                out[f"{m}_{_slug(arm)}_f{row['fraction']:g}"] = v["mean"]
    for q in results.get("questions", []):
        key = f"q{q['question']}_{q['metric']}_diff_{_slug(q['arm'])}_vs_{_slug(q['baseline'])}_f{q['fraction']:g}"
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


_NAMES = {"auc": "AUC", "accuracy": "Acc", "f1": "F1", "sensitivity": "Sens", "specificity": "Spec"}


def _interval(lo: Any, hi: Any, too_few: bool | None) -> str:
    return "[too few patients]" if too_few else f"[{_fmt(lo)}, {_fmt(hi)}]"


def _cell_text(cell: Mapping[str, Any], metrics: list[str], sep: str) -> str:
    return sep.join(f"{_NAMES.get(m, m)} {_fmt(cell[m]['mean'])} {_interval(cell[m]['lo'], cell[m]['hi'], cell[m].get('too_few_patients'))}"
                    for m in metrics if m in cell)


def table_rows(results: Mapping[str, Any], sep: str) -> tuple[list[str], list[list[str]]]:
    """Header and body of the paper's table (rows = fraction, columns = arm)."""
    t = results["table"]
    header = ["fraction"] + list(t["arms"])
    body = []
    for row in t["rows"]:
        body.append([f"{row['fraction']:g}"] + [_cell_text(row["cells"][a], t["metrics"], sep) if a in row["cells"] else "" for a in t["arms"]])
    return header, body


def _signed(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.3f}"


def _pvalue(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def question_sentences(results: Mapping[str, Any]) -> list[str]:
    """One plain sentence per question: verdict, effect with CI, p-value, and (if inconclusive) the detectable difference."""
    out = []
    for q in results.get("questions", []):
        lvl = int(round(q["level"] * 100))
        ci = "too few patients for an interval" if q.get("ci_label") else f"{lvl}% CI {_signed(q['ci'][0])} to {_signed(q['ci'][1])}"
        test = ("superiority" if q["hypothesis"] == "superiority" else f"non-inferiority, margin {q['margin']:g}")
        s = (f"({q['question']}) {q['arm']} vs {q['baseline']}, {q['endpoint']} at fraction {q['fraction']:g}: "
             f"{q['verdict'].upper()}; difference {_signed(q['estimate'])} ({ci}; one-sided p = {_pvalue(q['p_value'])}, {test})")
        if q["verdict"] == "inconclusive" and q.get("min_detectable_difference") is None:
            s += "; no detectable difference can be stated at this sample size"
        elif q["verdict"] == "inconclusive":
            s += (f"; at this sample size only a true difference of {_fmt(q['min_detectable_difference'])} or more would be "
                  f"detected with {int(round(results.get('protocol', {}).get('power', 0.8) * 100))}% power")
        out.append(s + ".")
    out += list(results.get("skipped_questions", []))
    return out


def _protocol_line(results: Mapping[str, Any]) -> str:
    p, n = results.get("protocol") or {}, results.get("n_patients") or {}
    if not p:
        return ""
    return (f"Test patients: {n.get('positive')} positive, {n.get('negative')} negative. Protocol: {p['folds']} fold(s) x "
            f"{p['repeats']} repeat(s), {p['gan_seeds']} GAN seed(s), {p['classifier_seeds']} classifier seed(s). "
            f"Primary endpoint: {p['primary_endpoint']} at fraction {_fmt(p.get('primary_fraction'), 3)}, pre-specified; "
            f"non-inferiority margin {p['margin']:g}; intervals below {p['min_patients_per_class']} patients per class are "
            f"labelled 'too few patients'." + (f" Design: {p['design']}; {p['n_patients_tested']} of {p['n_patients_total']} patients "
                                               "tested out of fold." if p.get("design") else ""))


def _question_details(q: Mapping[str, Any], power: float) -> list[str]:
    lines = [f"verdict: **{q['verdict']}** ({q['reason']})",
             f"effect: {q['arm']} minus {q['baseline']}, {q['endpoint']}, fraction {q['fraction']:g}: {_signed(q['estimate'])} "
             f"{_interval(q['ci'][0], q['ci'][1], q.get('ci_label') is not None)} ({int(round(q['level'] * 100))}% CI), one-sided p = {_pvalue(q['p_value'])}",
             f"power: {_fmt(q['power'] * 100, 0) + '%' if q['power'] is not None else 'n/a'} to show "
             f"{'superiority when the true gain is ' if q['hypothesis'] == 'superiority' else 'non-inferiority when the true difference is '}"
             f"{_signed(q['power_against'])}; minimum detectable difference at {int(round(power * 100))}% power: "
             f"{_fmt(q['min_detectable_difference'])}",
             f"method: {q['method']}; training variance included: {q['training_variance']}; "
             f"{q['n_splits']} split(s), {q['n_runs']} training run(s), {q['n_resamples']} resamples, {q['n_undefined']} undefined"]
    lines += [f"note: {n}" for n in q.get("notes", [])]
    return lines


def _secondary_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["question", "fraction", "endpoint", "difference", "CI", "p", "p (Holm)", "verdict"]
    body = []
    for q in results.get("questions", []):
        for s in q.get("secondary", []):
            body.append([q["question"], f"{s['fraction']:g}", s["endpoint"], _signed(s["estimate"]),
                         _interval(s["ci"][0], s["ci"][1], s.get("ci_label") is not None), _pvalue(s["p_value"]), _pvalue(s.get("p_value_holm")),
                         s["verdict"]])
    return header, body


def _audit_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    keys = ["mmd_pixels", "nn1_pixels", "nn1_embed", "fid_embed", "kid_embed", "confidence",
            "memorisation_rate", "distance_mia_auc", "discriminator_mia_auc", "median_dcr_synthetic", "median_dcr_holdout"]
    header = ["GAN"] + keys + ["gate"]
    body = []
    for a in results.get("audits", []):
        vals = {**a["fidelity"], **a["privacy"]}
        body.append([a["name"]] + [_fmt(vals.get(k), 4) for k in keys] + [_gate_word(a["gate"])])
    return header, body


def _gate_word(gate: Mapping[str, Any]) -> str:
    """pass / FAIL / insufficient evidence: the audit's decision where `lusynth audit` made one."""
    decision = gate.get("decision")
    if decision in ("pass", "fail", "insufficient_evidence"):
        return {"pass": "pass", "fail": "FAIL", "insufficient_evidence": "insufficient evidence"}[decision]
    return "pass" if gate.get("passed") else "FAIL"


def _patient_audit_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per GAN x membership attack from `lusynth audit` (patient level; None: no audit given)."""
    header = ["GAN", "decision", "patients (training / unseen)", "copy rate [CI]", "closer to training (patient p)", "attack",
              "membership AUC [CI]", "permutation p", "TPR at 1% FPR [CI]", "TPR at 10% FPR [CI]"]
    body = []
    for a in results.get("audits", []):
        pa = a.get("patient_audit")
        if not pa:
            continue
        cr, closer = pa["copy_rate"], pa.get("closer_to_training") or {}
        n = pa.get("n") or {}
        pts = n.get("patients") or {}
        who = f"{pts.get('member', '?')} / {pts.get('nonmember', '?')}"
        for i, (attack, m) in enumerate(sorted(pa["membership"].items())):
            tpr = m.get("tpr_at_fpr", {})

            def t(k: str, tpr: Mapping[str, Any] = tpr) -> str:
                v = tpr.get(k)
                return f"{_fmt(v['tpr'], 2)} [{_fmt(v['lo'], 2)}, {_fmt(v['hi'], 2)}]" if v else "-"

            first = [a["name"], pa["decision"].replace("_", " "), who, f"{_fmt(cr['copy_rate'])} [{_fmt(cr['lo'])}, {_fmt(cr['hi'])}]",
                     f"{_fmt(closer.get('share'))} ({_pvalue(closer.get('patient_permutation_p_value'))})"] if i == 0 else ["", "", "", "", ""]
            body.append(first + [attack, f"{_fmt(m['auc'])} [{_fmt(m['lo'])}, {_fmt(m['hi'])}]", _pvalue(m["p_value"]), t("0.01"), t("0.1")])
    return header, body


_PATIENT_AUDIT_NOTE = ("`lusynth audit` of each GAN's unfiltered output: members = the patients that trained it, non-members = "
                       "unseen (holdout) patients, near-copy threshold calibrated on the validation patients. PASS only when every "
                       "upper bound is under its limit, FAIL when a lower bound is over it, otherwise insufficient evidence.")


def _patient_fidelity_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["GAN", "space", "1-NN acc. synthetic", "1-NN acc. real floor", "MMD^2 synthetic (p)", "MMD^2 real floor (p)", "patients (test / floor)"]
    body = []
    for a in results.get("audits", []):
        f = a.get("fidelity_patient") or {}
        for space in ("pixels", "embedding"):
            if space in f:
                syn, floor = f[space]["synthetic"], f[space]["real_floor"]
                body.append([a["name"], space, _fmt(syn["nn1_accuracy"]), _fmt(floor["nn1_accuracy"]),
                             f"{_fmt(syn['mmd2'], 4)} ({_pvalue(syn['mmd_p_value'])})", f"{_fmt(floor['mmd2'], 4)} ({_pvalue(floor['mmd_p_value'])})",
                             f"{f['n_test_patients']} / {f['n_floor_patients']}"])
        if f.get("skipped"):
            body.append([a["name"], "-", f["skipped"], "", "", "", ""])
    return header, body


_PATIENT_FIDELITY_NOTE = ("Synthetic frames vs the test patients' frames, beside validation patients vs the same test patients (the floor: "
                          "what new real patients score). 1-NN accuracy leaves out the whole patient (0.5 = indistinguishable); MMD^2 uses "
                          "one bandwidth fixed from real training frames, so values compare across GANs; p from permutations that move a "
                          "patient's frames together.")


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _html_table(header: list[str], body: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{rows}</tbody></table>"


def _config_lines(results: Mapping[str, Any]) -> list[str]:
    cfg = results.get("config", {})
    lines = [f"frames: {cfg.get('frames_dir')} ({cfg.get('frames_digest')})"]
    for c in results.get("classifiers", []):
        lines.append(f"classifier {c['name']}: {c['dir']} hyper-parameters {c.get('hyperparams')} threshold {_fmt(c['val_threshold'])}")
    for a in results.get("audits", []):
        lines.append(f"synthetic {a['name']}: {a.get('synthetic_dir')} ({a.get('synthetic_digest')}) GAN {a.get('gan_dir') or 'n/a'}")
    return lines


def render_markdown(results: Mapping[str, Any], figures: Mapping[str, str]) -> str:
    """Markdown report; ``figures`` maps a figure name to its relative PNG path."""
    t = results["table"]
    power = (results.get("protocol") or {}).get("power", 0.8)
    out = ["# lusynth evaluation report", "", "## Results", "", _protocol_line(results), ""]
    out += [f"- {line}" for line in question_sentences(results)] + [""]
    for q in results.get("questions", []):
        out += [f"### ({q['question']}) {q['text']}", ""] + [f"- {line}" for line in _question_details(q, power)] + [""]
    out += ["", "### Per arm", "",
            f"Test patients only (no classifier or GAN was trained on them). Cells: estimate over folds and seeds with "
            f"{int(round(t['ci'] * 100))}% CI; {t['level']} level, accuracy/F1/sensitivity/specificity at the threshold chosen on "
            "the validation patients.", "", _md_table(*table_rows(results, "<br>")), ""]
    sec = _secondary_rows(results)
    if sec[1]:
        out += ["## Secondary endpoints", "", "Holm-adjusted within each question; exploratory.", "", _md_table(*sec), ""]
    gate = results.get("privacy_gate", {})
    if gate.get("passed") is not None:
        out += ["", f"**Privacy gate: {'PASS' if gate['passed'] else 'FAIL'}**"]
        out += [f"- {r}" for r in gate.get("reasons", [])]
    pa = _patient_audit_rows(results)
    if pa[1]:
        out += ["", "## Privacy audit (patient level)", "", _PATIENT_AUDIT_NOTE, "", _md_table(*pa)]
    if results.get("audits"):
        out += ["", "## Fidelity and privacy audit", "", _md_table(*_audit_rows(results)), "",
                "FID/KID are computed in the `real` classifier's embedding: not comparable with Inception FID/KID."]
        pf = _patient_fidelity_rows(results)
        if pf[1]:
            out += ["", "## Fidelity per patient", "", _PATIENT_FIDELITY_NOTE, "", _md_table(*pf)]
    out += ["", "## Figures", ""] + [f"![{name}]({path})" for name, path in figures.items()]
    out += ["", "## Configuration and data", ""] + [f"- {line}" for line in _config_lines(results)]
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%;margin:0.5em 0}.pass{color:#2a7a2a}.fail{color:#b00020}pre{background:#f7f7f7;padding:1em;overflow:auto}"""


def render_html(results: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    """Self-contained HTML: every PNG inlined as a base64 data URI."""
    t = results["table"]
    power = (results.get("protocol") or {}).get("power", 0.8)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>lusynth evaluation</title><style>{_CSS}</style></head><body>",
             "<h1>lusynth evaluation report</h1>", "<h2>Results</h2>", f"<p>{html.escape(_protocol_line(results))}</p>"]
    for q in results.get("questions", []):
        parts.append(f"<h3>({html.escape(q['question'])}) {html.escape(q['text'])}</h3><ul>")
        parts += [f"<li>{html.escape(line).replace('**', '')}</li>" for line in _question_details(q, power)]
        parts.append("</ul>")
    parts += [f"<p>{html.escape(s)}</p>" for s in results.get("skipped_questions", [])]
    parts += ["<h3>Per arm</h3>",
              f"<p>Test patients only. Cells: estimate over folds and seeds with {int(round(t['ci'] * 100))}% CI; "
              f"{html.escape(t['level'])} level, thresholds chosen on the validation patients.</p>", _html_table(*table_rows(results, "<br>"))]
    sec = _secondary_rows(results)
    if sec[1]:
        parts += ["<h2>Secondary endpoints</h2><p>Holm-adjusted within each question; exploratory.</p>", _html_table(*sec)]
    gate = results.get("privacy_gate", {})
    if gate.get("passed") is not None:
        cls = "pass" if gate["passed"] else "fail"
        parts.append(f"<p class='{cls}'><b>Privacy gate: {'PASS' if gate['passed'] else 'FAIL'}</b></p><ul>")
        parts += [f"<li>{html.escape(r)}</li>" for r in gate.get("reasons", [])]
        parts.append("</ul>")
    pa = _patient_audit_rows(results)
    if pa[1]:
        parts += ["<h2>Privacy audit (patient level)</h2>", f"<p>{html.escape(_PATIENT_AUDIT_NOTE)}</p>", _html_table(*pa)]
    if results.get("audits"):
        parts += ["<h2>Fidelity and privacy audit</h2>", _html_table(*_audit_rows(results)),
                  "<p>FID/KID are computed in the <code>real</code> classifier's embedding: not comparable with Inception FID/KID.</p>"]
        pf = _patient_fidelity_rows(results)
        if pf[1]:
            parts += ["<h2>Fidelity per patient</h2>", f"<p>{html.escape(_PATIENT_FIDELITY_NOTE)}</p>", _html_table(*pf)]
    parts.append("<h2>Figures</h2>")
    for name, png in figures.items():
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f"<h3>{html.escape(name)}</h3><img alt='{html.escape(name)}' src='data:image/png;base64,{b64}'>")
    parts.append("<h2>Configuration and data</h2><ul>")
    parts += [f"<li>{html.escape(line)}</li>" for line in _config_lines(results)]
    parts.append("</ul><details><summary>Evaluation parameters</summary><pre>")
    parts.append(html.escape(dumps_json(clean_json(results.get("config", {}).get("params", {})))))
    parts.append("</pre></details></body></html>")
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
