"""Report figures with matplotlib (Agg backend). Each function returns PNG bytes; writing is render's job."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_ARM_COLOURS = {"real": "#1f77b4", "real+aug": "#9467bd", "real+synthetic": "#2ca02c", "synthetic": "#d62728"}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def learning_curve(table: Mapping[str, Any], *, metric: str = "auc") -> bytes:
    """``metric`` vs training fraction, one line per arm, CI band from the table cells."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for arm in table["arms"]:
        pts = [(r["fraction"], r["cells"][arm][metric]) for r in table["rows"] if arm in r["cells"]]
        if not pts:
            continue
        f = np.array([p[0] for p in pts])
        mean = np.array([p[1]["mean"] for p in pts])
        lo = np.array([p[1]["lo"] for p in pts])
        hi = np.array([p[1]["hi"] for p in pts])
        c = _ARM_COLOURS.get(arm)
        ax.plot(f, mean, marker="o", label=arm, color=c)
        ax.fill_between(f, lo, hi, alpha=0.2, color=c)
    ax.set_xlabel("training fraction (of patients)")
    ax.set_ylabel(f"holdout {metric.upper() if metric == 'auc' else metric} ({table['level']} level)")
    ax.set_title(f"Learning curve, {int(round(table['ci'] * 100))}% CI bands")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def roc_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], *, title: str = "ROC, holdout frames") -> bytes:
    """One ROC curve per classifier (name -> {fpr, tpr})."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for name, pts in curves.items():
        if len(pts["fpr"]):
            arm = name.split(" ")[0]
            ax.plot(pts["fpr"], pts["tpr"], label=name, color=_ARM_COLOURS.get(arm), alpha=0.8,
                    linestyle="-" if "f=1 " in name + " " else "--")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def _grid(frames: np.ndarray, ncol: int) -> np.ndarray:
    n, s = len(frames), frames.shape[1]
    nrow = max(1, -(-n // ncol))
    out = np.zeros((nrow * (s + 2) + 2, ncol * (s + 2) + 2), dtype=np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, ncol)
        out[2 + r * (s + 2) : 2 + r * (s + 2) + s, 2 + c * (s + 2) : 2 + c * (s + 2) + s] = f
    return out


def sample_grid(real: np.ndarray, synthetic: np.ndarray, *, title: str, ncol: int = 8) -> bytes:
    """Real holdout frames beside synthetic frames of one class."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    for ax, frames, name in ((axes[0], real, "real (holdout)"), (axes[1], synthetic, "synthetic")):
        ax.imshow(_grid(frames, ncol) if len(frames) else np.zeros((8, 8)), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{name}, n={len(frames)}")
        ax.axis("off")
    fig.suptitle(title)
    return _png(fig)


def dcr_histogram(synthetic_dcr: np.ndarray, holdout_dcr: np.ndarray, *, threshold: float, title: str) -> bytes:
    """Distance to the closest training frame: synthetic vs real holdout, with the near-copy cut-off."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    allv = np.concatenate([synthetic_dcr, holdout_dcr])
    bins = np.linspace(0, float(allv.max()) * 1.02 + 1e-9, 40)
    ax.hist(holdout_dcr, bins=bins, alpha=0.55, density=True, label="real holdout -> train")  # type: ignore[arg-type]  # mpl stubs reject ndarray
    ax.hist(synthetic_dcr, bins=bins, alpha=0.55, density=True, label="synthetic -> train")  # type: ignore[arg-type]  # mpl stubs reject ndarray
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label="near-copy cut-off")
    ax.set_xlabel("distance to closest training frame (pixels in [0, 1])")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def fidelity_curves(history: Sequence[Mapping[str, Any]], *, title: str) -> bytes:
    """MMD and 1-NN accuracy over GAN training steps (from the GAN's fidelity_history.json)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    steps = [h.get("step", i) for i, h in enumerate(history)]
    for key in ("mmd_pixels", "mmd_embed"):
        if any(key in h for h in history):
            a1.plot(steps, [h.get(key, np.nan) for h in history], marker=".", label=key)
    for key in ("nn1_pixels", "nn1_embed"):
        if any(key in h for h in history):
            a2.plot(steps, [h.get(key, np.nan) for h in history], marker=".", label=key)
    a2.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    a1.set_title("kernel MMD^2 (lower is better)")
    a2.set_title("1-NN accuracy (0.5 is ideal)")
    for a in (a1, a2):
        a.set_xlabel("GAN step")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(title)
    return _png(fig)
