"""Report figures with matplotlib (Agg backend). Each function returns PNG bytes; writing is render's job.

Curves that can coincide (arms with the same AUC, classifiers with the same ROC) are told apart by
colour, line style and marker together, drawn from wide to narrow so a line on top of another
leaves the one below visible at its edges, and the legend sits outside the axes so it hides no data.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_ARM_COLOURS = {"real": "#1f77b4", "real+aug": "#9467bd", "real+synthetic": "#2ca02c", "synthetic": "#d62728"}
_OTHER_COLOURS = ("#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_STYLES = ("-", "--", "-.", ":")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _arm_of(name: str) -> str:
    return name.split(" ")[0]


def arm_style(arm: str, index: int) -> dict[str, Any]:
    """Colour, marker and line style of the ``index``-th arm: every arm differs in all three, so two
    coinciding curves stay distinguishable in print and for colour-blind readers."""
    colour = _ARM_COLOURS.get(_arm_of(arm)) or _OTHER_COLOURS[index % len(_OTHER_COLOURS)]
    return {"color": colour, "marker": _MARKERS[index % len(_MARKERS)], "linestyle": _STYLES[index % len(_STYLES)]}


def _num(v: Any) -> float:
    """A table value as a float, NaN for None/null (report.json writes NaN as null)."""
    return float(v) if isinstance(v, (int, float)) and v is not None else math.nan


def learning_curve(table: Mapping[str, Any], *, metric: str = "auc") -> bytes:
    """``metric`` vs training fraction, one line per arm, with the table cells' CI as error bars and bands.

    Arms are dodged sideways by a small offset so equal values do not hide each other; a cell with
    too few patients for an interval gets a hollow marker and no bar."""
    arms = list(table["arms"])
    fractions = sorted({float(r["fraction"]) for r in table["rows"]})
    span = (max(fractions) - min(fractions)) if len(fractions) > 1 else 1.0
    step = 0.02 * span
    fig, ax = plt.subplots(figsize=(6.4, 3.9))
    lows, highs = [], []
    any_hollow = False
    for i, arm in enumerate(arms):
        pts = [(float(r["fraction"]), r["cells"][arm][metric]) for r in table["rows"] if metric in r["cells"].get(arm, {})]
        if not pts:
            continue
        st = arm_style(arm, i)
        x = np.array([p[0] for p in pts]) + (i - (len(arms) - 1) / 2) * step
        mean = np.array([_num(p[1].get("mean")) for p in pts])
        few = np.array([bool(p[1].get("too_few_patients")) for p in pts])
        lo = np.array([math.nan if f else _num(p[1].get("lo")) for p, f in zip(pts, few, strict=True)])
        hi = np.array([math.nan if f else _num(p[1].get("hi")) for p, f in zip(pts, few, strict=True)])
        # wide to narrow: a line drawn over an equal one leaves the one below showing at its edges
        width = 3.4 - 2.0 * i / max(1, len(arms) - 1)
        ax.plot(x, mean, color=st["color"], linestyle=st["linestyle"], linewidth=width, alpha=0.75, label=arm)
        solid, hollow = ~few, few
        ax.plot(x[solid], mean[solid], linestyle="none", marker=st["marker"], color=st["color"], markersize=6, label="_")
        ax.plot(x[hollow], mean[hollow], linestyle="none", marker=st["marker"], markerfacecolor="white", color=st["color"], markersize=6, label="_")
        any_hollow |= bool(hollow.any())
        has = np.isfinite(lo) & np.isfinite(hi)
        if has.any():
            ax.errorbar(x[has], mean[has], yerr=[mean[has] - lo[has], hi[has] - mean[has]], fmt="none", ecolor=st["color"],
                        elinewidth=1, capsize=3, alpha=0.8)
            if has.sum() >= 2:
                ax.fill_between(x[has], lo[has], hi[has], color=st["color"], alpha=0.08, linewidth=0)
        lows += list(lo[has]) + list(mean[np.isfinite(mean)])
        highs += list(hi[has]) + list(mean[np.isfinite(mean)])
    if lows:
        pad = max(0.03, 0.08 * (max(highs) - min(lows)))
        # every table metric is a proportion or an AUC: an interval past [0, 1] is cut at the axes' edge
        ax.set_ylim(max(-0.02, min(lows) - pad), min(1.02, max(highs) + pad))
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.set_xlim(min(fractions) - 0.1 * span, max(fractions) + 0.1 * span)
    name = metric.upper() if metric == "auc" else metric
    ax.set_xlabel("training fraction (share of training patients)")
    ax.set_ylabel(f"test {name}, {table.get('level', 'patient')} level (higher is better)")
    ax.set_title(f"Learning curve with {int(round(float(table.get('ci', 0.95)) * 100))}% CIs")
    ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    # proxies: the legend shows line style and marker together (the plotted line has no markers)
    labels = [str(t.get_label()) for t in ax.get_lines() if not str(t.get_label()).startswith("_")]
    handles = [Line2D([], [], **arm_style(a, arms.index(a))) for a in labels]
    title = "hollow: too few patients\nfor an interval" if any_hollow else None
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=9, title=title,
              title_fontsize=8)
    return _png(fig)


#: beyond this many classifiers the ROC figure draws one legend entry per arm (and family), not per classifier
ROC_LEGEND_MAX = 12


def _roc_group(name: str) -> str:
    """A classifier's arm and generator family from its name (``real+synthetic f=0.5 s=0 k=1 fastgan`` ->
    ``real+synthetic fastgan``): the words that are not ``key=value`` settings."""
    return " ".join(t for t in name.split(" ") if "=" not in t)


def roc_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], *, title: str = "ROC, holdout frames") -> bytes:
    """One ROC curve per classifier (name -> {fpr, tpr}).

    Up to :data:`ROC_LEGEND_MAX` classifiers, curves are drawn from the widest line to the narrowest,
    each with its own style and a few markers, so identical curves show as nested stripes rather than
    one line. Beyond that (folds x seeds x families), every curve is a thin translucent line in its
    arm's style and the legend has one entry per arm and family with its number of classifiers: a
    hundred-entry legend is not readable."""
    names = [n for n, pts in curves.items() if len(pts["fpr"])]
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":", label="chance")
    if len(names) > ROC_LEGEND_MAX:
        groups = list(dict.fromkeys(_roc_group(n) for n in names))
        counts = {g: sum(_roc_group(n) == g for n in names) for g in groups}
        for name in names:
            g = _roc_group(name)
            st = arm_style(g, groups.index(g))
            ax.plot(np.asarray(curves[name]["fpr"], float), np.asarray(curves[name]["tpr"], float), color=st["color"], alpha=0.35,
                    linewidth=1.2, linestyle=st["linestyle"])
        for i, g in enumerate(groups):  # the legend: one line per group, drawn outside the axes
            st = arm_style(g, i)
            ax.plot([], [], color=st["color"], linestyle=st["linestyle"], linewidth=2, label=f"{g} ({counts[g]} classifiers)")
        title = f"{title} ({len(names)} classifiers)"
    else:
        arms = list(dict.fromkeys(_arm_of(n) for n in names))
        widths = np.linspace(5.0, 1.4, max(len(names), 1)) if len(names) > 1 else [1.8]
        for i, name in enumerate(names):
            pts = curves[name]
            st = arm_style(name, arms.index(_arm_of(name)))
            style = _STYLES[i % len(_STYLES)] if len(names) > len(arms) else st["linestyle"]
            fpr, tpr = np.asarray(pts["fpr"], float), np.asarray(pts["tpr"], float)
            ax.plot(fpr, tpr, label=name, color=st["color"], alpha=0.55 if len(names) > 1 else 0.9, linewidth=widths[i],
                    linestyle=style, marker=st["marker"], markevery=max(1, len(fpr) // 6), markersize=4 + widths[i])
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return _png(fig)


def _grid(frames: np.ndarray, ncol: int, pad: int = 2) -> np.ndarray:
    """Frames tiled ``ncol`` wide with ``pad`` white pixels between them (the last row left white)."""
    n, h, w = len(frames), frames.shape[1], frames.shape[2]
    ncol = max(1, min(ncol, n))
    nrow = max(1, -(-n // ncol))
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad), 255, dtype=np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = f
    return out


def sample_grid(real: np.ndarray, synthetic: np.ndarray, *, title: str, ncol: int = 8) -> bytes:
    """Real test frames above synthetic frames of one class; the figure's height follows the grids'
    aspect ratio, so there is no blank band around them."""
    grids = [(name, _grid(frames, ncol) if len(frames) else None, len(frames))
             for name, frames in ((f"real test frames, n={len(real)}", real), (f"synthetic frames, n={len(synthetic)}", synthetic))]
    width = 9.0
    heights = [width * g.shape[0] / g.shape[1] if g is not None else 0.4 for _, g, _ in grids]
    fig, axes = plt.subplots(2, 1, figsize=(width, sum(heights) + 1.0), gridspec_kw={"height_ratios": heights})
    for ax, (name, g, _n) in zip(axes, grids, strict=True):
        if g is not None:
            ax.imshow(g, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(name, fontsize=10, loc="left")
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def dcr_histogram(synthetic_dcr: np.ndarray, holdout_dcr: np.ndarray, *, threshold: float, title: str) -> bytes:
    """Distance to the closest training frame: synthetic vs real holdout, with the near-copy cut-off."""
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    allv = np.concatenate([synthetic_dcr, holdout_dcr])
    bins = np.linspace(0, float(allv.max()) * 1.02 + 1e-9, 40)
    ax.hist(holdout_dcr, bins=bins, alpha=0.55, density=True, label="real test frame to training")  # type: ignore[arg-type]  # mpl stubs reject ndarray
    ax.hist(synthetic_dcr, bins=bins, alpha=0.55, density=True, label="synthetic frame to training", hatch="//")  # type: ignore[arg-type]  # mpl stubs reject ndarray
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label="near-copy cut-off")
    ax.set_xlabel("Euclidean distance to the closest training frame (pixel values in [0, 1])")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return _png(fig)


def fidelity_curves(history: Sequence[Mapping[str, Any]], *, title: str, chosen_step: int | None = None,
                    max_memorisation_rate: float | None = None) -> bytes:
    """MMD, 1-NN accuracy and the near-copy rate over GAN training steps (from the GAN's
    fidelity_history.json), with the selection's memorisation guard and the chosen checkpoint: a
    generator that gets closer to real only by copying training frames shows it here."""
    memo = any("memorisation_rate" in h for h in history)
    fig, axes = plt.subplots(1, 3 if memo else 2, figsize=(13.5 if memo else 9.5, 3.4), layout="constrained")
    a1, a2 = axes[0], axes[1]
    steps = [h.get("step", i) for i, h in enumerate(history)]
    names = {"mmd_pixels": "pixels", "mmd_embed": "embedding", "nn1_pixels": "pixels", "nn1_embed": "embedding"}
    for ax, keys in ((a1, ("mmd_pixels", "mmd_embed")), (a2, ("nn1_pixels", "nn1_embed"))):
        for i, key in enumerate(keys):
            if any(key in h for h in history):
                ax.plot(steps, [_num(h.get(key)) for h in history], marker=_MARKERS[i], linestyle=_STYLES[i], label=names[key])
    a2.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="ideal (0.5)")
    a1.set_title("kernel MMD² (lower is better)", fontsize=10)
    a2.set_title("1-NN accuracy (0.5 is ideal)", fontsize=10)
    if memo:
        a3 = axes[2]
        a3.plot(steps, [_num(h.get("memorisation_rate")) for h in history], marker=_MARKERS[0], color="#d62728", label="near-copy rate")
        if max_memorisation_rate is not None:
            a3.axhline(max_memorisation_rate, color="k", linestyle="--", linewidth=1, label="selection's limit")
        a3.set_title("near-copies of training frames (lower is safer)", fontsize=10)
        a3.set_ylim(-0.02, 1.02)
    for a in axes:
        if chosen_step is not None:
            a.axvline(chosen_step, color="grey", linestyle="-.", linewidth=1, label="chosen checkpoint")
        a.set_xlabel("GAN step")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _png(fig)
