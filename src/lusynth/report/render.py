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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lusynth.atomic import dumps_json
from lusynth.report.tables import (
    FAMILIES_NOTE,
    FIDELITY_NOTE,
    PATIENT_AUDIT_NOTE,
    PATIENT_FIDELITY_NOTE,
    WITHHELD_NOTE,
    family_rows,
    fidelity_family_rows,
    fidelity_rows,
    patient_audit_rows,
    patient_fidelity_rows,
    privacy_rows,
    table_rows,
    withheld_lines,
)
from lusynth.report.verdicts import (
    COMPARISON_NOTE,
    protocol_line,
    question_rows,
    question_sentences,
    secondary_rows,
)
from lusynth.report.words import (
    FAMILY_NAMES,
    GAN_FIGURES,
    RESULT_FIGURES,
    RunPaths,
    all_questions,
    clean_json,
    figure_tag,
    figure_title,
    fmt,
    gan_heading,
    pct,
    question_key,
    several_families,
    slug,
)

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


def headline_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """Flat ``name -> number`` (KFP Metrics / MLflow): table cells, paired differences, audits."""
    out: dict[str, float] = {}
    table = results.get("table") or {}
    for row in table.get("rows", []):
        for arm, cell in row["cells"].items():
            for m, v in cell.items():
                out[f"{m}_{slug(arm)}_f{row['fraction']:g}"] = v["mean"]
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
                out[f"{slug(a['name'])}_{k}"] = v
        out[f"{slug(a['name'])}_privacy_passed"] = 1.0 if a["gate"]["passed"] else 0.0
    for e in results.get("fidelity_families") or []:  # per-patient fidelity per family, with its interval over splits
        for quantity, est in e.items():
            if isinstance(est, Mapping) and "estimate" in est:  # the entry's estimates, whichever it has
                key = f"fidelity_patient_{quantity}_{slug(e['generator'])}_f{e['fraction']:g}"
                out[key] = est["estimate"]
                if est.get("ci") and est["ci"][0] is not None:
                    out[f"{key}_lo"], out[f"{key}_hi"] = est["ci"]
    gate = results.get("privacy_gate") or {}
    if gate.get("passed") is not None:
        out["privacy_gate_passed"] = 1.0 if gate["passed"] else 0.0
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and v is not None and math.isfinite(float(v))}


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


def _config_lines(results: Mapping[str, Any], paths: RunPaths) -> list[str]:
    cfg = results.get("config", {})
    lines = [f"frames: {paths.path(cfg.get('frames_dir'))} ({cfg.get('frames_digest')})"]
    for c in results.get("classifiers", []):
        lines.append(f"classifier {c['name']}: {paths.path(c.get('dir'))}; hyper-parameters {c.get('hyperparams')}; "
                     f"threshold {fmt(c.get('val_threshold'))}")
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
    paths = RunPaths(results)
    t = results["table"]
    out = [_h(1, "lusynth evaluation report"), _kv(metadata_rows(results), cls="meta"), _h(2, "Results")]
    if protocol_line(results):
        out.append(_p(protocol_line(results)))
    out.append(_ul(question_sentences(results)))
    held = withheld_lines(results)
    if held:
        out += [_h(3, "Withheld generators and skipped classifiers"), _p(WITHHELD_NOTE), _ul([paths.text(x) for x in held])]
    for q in results.get("questions", []):
        family = f" — {FAMILY_NAMES.get(q['generator'], q['generator'])}" if q.get("generator") and several_families(results) else ""
        out += [_h(3, f"({q['question']}) {q['text']}{family}"), _kv(question_rows(q, results, paths), cls=f"question {q.get('verdict', '')}")]
    if several_families(results):
        out += [_h(3, "Generator families side by side"), _p(FAMILIES_NOTE), _table(*family_rows(results), cls="families")]
    if results.get("fidelity_families"):
        out += [_h(3, "Per-patient fidelity, with intervals"), _p(FIDELITY_NOTE), _table(*fidelity_family_rows(results), cls="fidelity-families")]
    for q in results.get("comparisons", []):
        out += [_h(3, f"(c) {q['text']} — {FAMILY_NAMES.get(q['generator'], q['generator'])}"), _p(COMPARISON_NOTE),
                _kv(question_rows(q, results, paths), cls=f"question {q.get('verdict', '')}")]
    main, per_gan, other = _figures(figure_names, results)
    out += [_h(3, "Per arm"),
            _p(f"Test patients only (no classifier or GAN was trained on them). Cells: estimate over folds and seeds with its "
               f"{pct(t.get('ci'))}% CI; {t.get('level', 'patient')} level; accuracy, F1, sensitivity and specificity at the threshold "
               "chosen on the validation patients. ↑: higher is better."),
            _table(*table_rows(results), cls="arms")]
    out += [_Block("figure", n, items=(figure_title(n),)) for n in main]
    sec = secondary_rows(results)
    if sec[1]:
        out += [_h(2, "Secondary endpoints"), _p("Holm-adjusted within each question; exploratory."), _table(*sec)]
    gate = results.get("privacy_gate") or {}
    if gate.get("passed") is not None:
        out += [_p(f"Privacy gate: {'PASS' if gate['passed'] else 'FAIL'}", cls="pass" if gate["passed"] else "fail"),
                _ul([paths.text(r) for r in gate.get("reasons", [])])]
    (h1, b1), (h2, b2) = patient_audit_rows(results)
    if b1:
        out += [_h(2, "Privacy audit (patient level)"), _p(PATIENT_AUDIT_NOTE), _table(h1, b1), _table(h2, b2)]
    if results.get("audits"):
        out += [_h(2, "Fidelity and privacy (frame level)"), _table(*fidelity_rows(results)), _table(*privacy_rows(results)),
                _p("FID/KID are computed in the `real` classifier's embedding: not comparable with Inception FID/KID. "
                   "Confidence: the real classifier's mean probability of the generator's class.")]
        header, body, skipped = patient_fidelity_rows(results)
        if body or skipped:
            out += [_h(2, "Fidelity per patient"), _p(PATIENT_FIDELITY_NOTE)]
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
