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
    for row in (results.get("headline") or {}).get("fractions", []):
        for key in ("real_plus_synthetic_vs_real", "synthetic_vs_real"):
            if key in row:
                out[f"auc_diff_{key}_f{row['fraction']:g}"] = row[key]["auc"]["diff"]
                out[f"auc_diff_{key}_f{row['fraction']:g}_lo"] = row[key]["auc"]["lo"]
                out[f"auc_diff_{key}_f{row['fraction']:g}_hi"] = row[key]["auc"]["hi"]
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


def _cell_text(cell: Mapping[str, Any], metrics: list[str], sep: str) -> str:
    names = {"auc": "AUC", "accuracy": "Acc", "f1": "F1"}
    return sep.join(f"{names.get(m, m)} {_fmt(cell[m]['mean'])} [{_fmt(cell[m]['lo'])}, {_fmt(cell[m]['hi'])}]" for m in metrics)


def table_rows(results: Mapping[str, Any], sep: str) -> tuple[list[str], list[list[str]]]:
    """Header and body of the paper's table (rows = fraction, columns = arm)."""
    t = results["table"]
    header = ["fraction"] + list(t["arms"])
    body = []
    for row in t["rows"]:
        body.append([f"{row['fraction']:g}"] + [_cell_text(row["cells"][a], t["metrics"], sep) if a in row["cells"] else "" for a in t["arms"]])
    return header, body


def _audit_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    keys = ["mmd_pixels", "nn1_pixels", "nn1_embed", "fid_embed", "kid_embed", "confidence",
            "memorisation_rate", "distance_mia_auc", "discriminator_mia_auc", "median_dcr_synthetic", "median_dcr_holdout"]
    header = ["GAN"] + keys + ["gate"]
    body = []
    for a in results.get("audits", []):
        vals = {**a["fidelity"], **a["privacy"]}
        body.append([a["name"]] + [_fmt(vals.get(k), 4) for k in keys] + ["pass" if a["gate"]["passed"] else "FAIL"])
    return header, body


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
    out = ["# lusynth evaluation report", "",
           f"Holdout only (patients never seen by a GAN or a classifier). Cells: mean over seeds with "
           f"{int(round(t['ci'] * 100))}% patient-bootstrap CI; {t['level']} level, accuracy/F1 at the "
           f"{'validation-chosen' if t['threshold'] == 'val' else '0.5'} threshold.", "",
           "## Results", "", _md_table(*table_rows(results, "<br>")), "", "## Headline", ""]
    out += [f"- {s}" for s in results.get("headline", {}).get("summary", [])] or ["- only the real arm was evaluated"]
    gate = results.get("privacy_gate", {})
    if gate.get("passed") is not None:
        out += ["", f"**Privacy gate: {'PASS' if gate['passed'] else 'FAIL'}**"]
        out += [f"- {r}" for r in gate.get("reasons", [])]
    if results.get("audits"):
        out += ["", "## Fidelity and privacy audit", "", _md_table(*_audit_rows(results)), "",
                "FID/KID are computed in the `real` classifier's embedding: not comparable with Inception FID/KID."]
    out += ["", "## Figures", ""] + [f"![{name}]({path})" for name, path in figures.items()]
    out += ["", "## Configuration and data", ""] + [f"- {line}" for line in _config_lines(results)]
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%;margin:0.5em 0}.pass{color:#2a7a2a}.fail{color:#b00020}pre{background:#f7f7f7;padding:1em;overflow:auto}"""


def render_html(results: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    """Self-contained HTML: every PNG inlined as a base64 data URI."""
    t = results["table"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>lusynth evaluation</title><style>{_CSS}</style></head><body>",
             "<h1>lusynth evaluation report</h1>",
             f"<p>Holdout only. Cells: mean over seeds with {int(round(t['ci'] * 100))}% patient-bootstrap CI; "
             f"{html.escape(t['level'])} level, accuracy/F1 at the {'validation-chosen' if t['threshold'] == 'val' else '0.5'} threshold.</p>",
             "<h2>Results</h2>", _html_table(*table_rows(results, "<br>")), "<h2>Headline</h2><ul>"]
    parts += [f"<li>{html.escape(s)}</li>" for s in results.get("headline", {}).get("summary", [])] or ["<li>only the real arm was evaluated</li>"]
    parts.append("</ul>")
    gate = results.get("privacy_gate", {})
    if gate.get("passed") is not None:
        cls = "pass" if gate["passed"] else "fail"
        parts.append(f"<p class='{cls}'><b>Privacy gate: {'PASS' if gate['passed'] else 'FAIL'}</b></p><ul>")
        parts += [f"<li>{html.escape(r)}</li>" for r in gate.get("reasons", [])]
        parts.append("</ul>")
    if results.get("audits"):
        parts += ["<h2>Fidelity and privacy audit</h2>", _html_table(*_audit_rows(results)),
                  "<p>FID/KID are computed in the <code>real</code> classifier's embedding: not comparable with Inception FID/KID.</p>"]
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
