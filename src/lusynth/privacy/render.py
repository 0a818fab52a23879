"""The audit's Markdown report and figures (matplotlib, Agg): bytes and text, written by :func:`lusynth.privacy.run.audit`."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lusynth.util import display_path  # noqa: E402

__all__ = ["figures", "markdown"]

EXPLAIN = """\
How to read this. *Copy rate*: share of the generator's unfiltered frames that are near-copies of
a training frame (closer to one training patient, relative to the next, than `copy_margin` x the
`percentile`-th percentile of unseen calibration patients), with its exact (Clopper-Pearson)
interval. *Membership AUC*: how well an attacker holding the synthetic set tells training
patients from unseen patients (0.5 = not at all), one score per patient, with a patient
permutation p-value and a stratified patient bootstrap interval. The decision is PASS only when
every upper bound is under its limit, FAIL when a (Bonferroni-adjusted) lower bound is over it,
and otherwise *insufficient evidence*, with the sample that would settle it.
"""


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figures(report: Mapping[str, Any], ratios: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
    """``{file name: PNG}``: near-copy ratios per space, patient scores per attack."""
    out = {}
    spaces = list(ratios)
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.5 * len(spaces), 3.2), squeeze=False, layout="constrained")
    for ax, s in zip(axes[0], spaces, strict=True):
        r = ratios[s]
        bins = np.linspace(0, max(1.0, float(np.max(r["synthetic"])), float(np.max(r["calibration"]))), 40)
        ax.hist(r["calibration"], bins=bins, alpha=0.6, density=True, label="calibration (unseen) frames")
        ax.hist(r["synthetic"], bins=bins, alpha=0.6, density=True, label="synthetic frames (unfiltered)")
        ax.axvline(r["threshold"], color="k", ls="--", label="near-copy cut-off")
        ax.set_title(f"{s}: nearest / next training patient")
        ax.set_xlabel("distance ratio (0 = copy)")
    axes[0][0].set_ylabel("density")
    # below the panels: inside, it covered the bars
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    out["near_copy_ratios.png"] = _png(fig)
    attacks = report["membership"]
    # constrained layout: each panel has its own y scale, and its tick labels must not run into the next panel
    fig, axes = plt.subplots(1, len(attacks), figsize=(3.4 * len(attacks), 3.3), squeeze=False, layout="constrained")
    for i, (ax, (name, res)) in enumerate(zip(axes[0], attacks.items(), strict=True)):
        sc = res["patient_scores"]
        for x, key in ((0, "member"), (1, "nonmember")):
            v = np.asarray(sc[key])
            ax.scatter(np.full(len(v), x) + np.linspace(-0.1, 0.1, len(v)), v, s=14, marker="o" if x == 0 else "s")
        ax.set_xticks([0, 1], ["training", "unseen"])
        ax.set_xlim(-0.5, 1.5)
        ax.set_title(f"{name}: AUC {res['auc']:.2f} [{res['lo']:.2f}, {res['hi']:.2f}]", fontsize=9)
        if i == 0:
            ax.set_ylabel("patient score (higher = member)")
    out["membership_scores.png"] = _png(fig)
    return out


def markdown(report: Mapping[str, Any], *, base: str | None = None) -> str:
    """The audit as a Markdown page a data protection officer can read; paths inside ``base`` (the
    run directory) are shown relative to it."""
    mem, n, f = report["memorisation"], report["n"], report["filter"]
    lines = [
        f"# Privacy audit: {report['decision'].upper()}",
        "",
        f"- synthetic set: `{display_path(report['synthetic']['path'], base)}` ({report['synthetic']['kind']}, {n['synthetic']} frames audited, "
        f"{'labelled' if report['synthetic']['labelled'] else 'unlabelled'})",
        f"- real frames: `{display_path(report['frames']['path'], base)}` ({report['frames']['digest']}); generator trained on: {report['trained_on']}",
        f"- patients: {n['patients']['member']} training, {n['patients']['calibration']} calibration (val), "
        f"{n['patients']['nonmember']} unseen (holdout)",
        "",
        *(f"- {r}" for r in report["reasons"]),
        "",
        "| check | estimate | interval | limit | outcome |",
        "|---|---|---|---|---|",
        *(f"| {c['name']} | {c['value']:.3f} | [{c['lo']:.3f}, {c['hi']:.3f}] | {c['limit']:.3g} | {c['outcome']} |"
          for c in report["checks"]),
        "",
        "## Memorisation (unfiltered output)",
        "",
        f"- copy rate {mem['copy_rate']:.3f} [{mem['lo']:.3f}, {mem['hi']:.3f}] ({mem['copies']} of {mem['n_synthetic']}); "
        f"by space: {', '.join(f'{k} {v:.3f}' for k, v in mem['by_space'].items())}",
        f"- closer to a training patient than to an equal number of unseen ones: {mem['closer_to_training']['share']:.3f} "
        f"(0.5 without memorisation); binomial p = {mem['closer_to_training']['binomial_p_value']:.3g} (frames), "
        f"patient permutation p = {mem['closer_to_training']['patient_permutation_p_value']:.3g}",
        f"- the generate filter removed {f['removed_by_filter']} of these frames; near-copies found by the audit: "
        f"{f['copies_in_unfiltered']} ({f['copies_the_filter_removed']} removed by the filter, {f['copies_the_filter_kept']} kept)",
        "",
        "## Membership inference (patient level)",
        "",
        "| attack | AUC | interval | permutation p | TPR at 1% FPR | TPR at 10% FPR |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["membership"].items():
        t1, t10 = r["tpr_at_fpr"]["0.01"], r["tpr_at_fpr"]["0.1"]
        lines.append(f"| {name} | {r['auc']:.3f} | [{r['lo']:.3f}, {r['hi']:.3f}] | {r['p_value']:.3g} | "
                     f"{t1['tpr']:.2f} [{t1['lo']:.2f}, {t1['hi']:.2f}] | {t10['tpr']:.2f} [{t10['lo']:.2f}, {t10['hi']:.2f}] |")
    lines += ["", "![near-copy ratios](near_copy_ratios.png)", "", "![membership scores](membership_scores.png)", "", EXPLAIN]
    return "\n".join(lines)
