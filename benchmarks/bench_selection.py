"""Which checkpoint selection rule picks the generator that is closest to *unseen* patients?

``bench_generators.py`` evaluates every generator it trains at ``--evals`` points of its budget
and records, at each point, the trainer's validation-side measures (what a selection rule may
look at: ``nn1_embed``, ``mmd_embed``, ``nn1_pixels``, ``mmd_pixels``, the memorisation rate) and
the same generator's MMD^2 against the fold's **test** patients of the class (``test_mmd_embed_ref``,
in the fidelity embedding, one RBF bandwidth fixed from the real test frames; no rule sees it).
This script replays each rule of :data:`lusynth.gan.params.SELECTION_RULES` over those recorded
histories with the trainer's own :func:`lusynth.gan.selection.choose` (the demo's
``max_memorisation_rate``), and scores each choice by its test-patient MMD^2. Two references:

* ``oracle``: the eligible checkpoint (memorisation guard passed) with the lowest test MMD^2, the
  best any rule could do under the guard;
* ``oracle-unguarded``: the same without the guard, which shows what the guard costs.

And the issue's 1-NN bar (leave-one-patient-out 1-NN in the embedding <= 0.70): on POCUS the only
patients with room for leave-one-patient-out are the training ones (``train_nn1_embed_patient``;
2 held-out patients make it degenerate), so ``nn1_bar`` counts, per store, the runs where some
eligible checkpoint reads <= 0.70 there, against the runs where some *copying* checkpoint (near-copy
rate above the guard) does: whether the bar is reachable without copying.

Per results file and store: each rule's mean test MMD^2, its mean memorisation rate, and its
paired difference from the default rule (``nn1_embed``) over the runs (family x seed) with a 95 %
t interval; wins and losses count runs where it chose a checkpoint with lower / higher test MMD^2.
Runs of different families share a seed's data and embedding, so the interval treats as
independent what is only partly so: read it as a guide. Trains nothing (seconds)::

    .venv/bin/python benchmarks/bench_selection.py
    .venv/bin/python benchmarks/bench_selection.py --results benchmarks/results/generators_calibrated.json

Writes ``benchmarks/results/selection.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from lusynth.gan.params import SELECTION_RULES, GanParams
from lusynth.gan.selection import choose

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_INPUTS = ("generators_calibrated.json", "generators_calibrated_4x.json", "generators_tuning.json")
DEFAULT_RULE = GanParams().selection
TEST_KEY = "test_mmd_embed_ref"  # the held-out reading each choice is scored by
ORACLE_KEY = "mmd_test_oracle"  # TEST_KEY copied under an ``mmd_`` name, so choose() can rank by it
REFERENCES = ("oracle", "oracle-unguarded")
NN1_KEY = "train_nn1_embed_patient"  # leave-one-patient-out 1-NN against the class's training patients
NN1_BAR = 0.70  # the bar


def nn1_bar(history: list[dict[str, Any]], *, max_memorisation_rate: float) -> dict[str, bool] | None:
    """Whether any eligible / any copying (near-copy rate above the guard) trained checkpoint reads
    ``NN1_KEY`` <= ``NN1_BAR``; None when the history has no such reading."""
    h = [e for e in history if "error" not in e and float(e["epoch"]) >= 1 and NN1_KEY in e]
    if not h:
        return None
    ok = [float(e[NN1_KEY]) <= NN1_BAR for e in h]
    copying = [float(e["memorisation_rate"]) > max_memorisation_rate for e in h]
    return {"eligible": any(o and not c for o, c in zip(ok, copying, strict=True)), "copying": any(o and c for o, c in zip(ok, copying, strict=True)),
            "any_copying": any(copying)}


def replay(history: list[dict[str, Any]], *, max_memorisation_rate: float) -> dict[str, dict[str, Any]] | None:
    """Each rule's (and each reference's) chosen evaluation of one generator's history; None when
    the history has no evaluation after training started or lacks the test-patient reading."""
    h = [dict(e, **{ORACLE_KEY: e[TEST_KEY]}) for e in history if "error" not in e and TEST_KEY in e]
    if not any(float(e["epoch"]) >= 1 for e in h):
        return None
    out = {rule: choose(h, rule=rule, max_memorisation_rate=max_memorisation_rate) for rule in SELECTION_RULES}
    out["oracle"] = choose(h, rule=ORACLE_KEY, max_memorisation_rate=max_memorisation_rate)
    out["oracle-unguarded"] = choose(h, rule=ORACLE_KEY, max_memorisation_rate=1.0)
    return {name: {"step": int(c["entry"]["step"]), "eligible": bool(c["eligible"]), TEST_KEY: float(c["entry"][TEST_KEY]),
                   "memorisation_rate": float(c["entry"]["memorisation_rate"])} for name, c in out.items()}


def _paired(diffs: np.ndarray) -> dict[str, float]:
    """Mean paired difference with a 95 % t interval (nan bounds with fewer than 2 runs; the mean itself
    as both bounds when every difference is the same)."""
    mean = float(diffs.mean())
    if len(diffs) < 2 or float(diffs.std(ddof=1)) == 0.0:
        return {"mean": mean, "lo": mean if len(diffs) >= 2 else float("nan"), "hi": mean if len(diffs) >= 2 else float("nan")}
    lo, hi = scipy.stats.t.interval(0.95, len(diffs) - 1, loc=mean, scale=float(scipy.stats.sem(diffs)))
    return {"mean": mean, "lo": float(lo), "hi": float(hi)}


def summarise(runs: list[dict[str, Any]], *, default_rule: str = DEFAULT_RULE) -> dict[str, dict[str, Any]]:
    """Per rule: mean test MMD^2 and memorisation rate of its choices, and the paired difference
    from ``default_rule`` (negative: closer to the unseen patients)."""
    base = np.array([r["choices"][default_rule][TEST_KEY] for r in runs])
    out: dict[str, dict[str, Any]] = {}
    for name in (*SELECTION_RULES, *REFERENCES):
        values = np.array([r["choices"][name][TEST_KEY] for r in runs])
        diffs = values - base
        out[name] = {"runs": len(runs), "test_mmd": float(values.mean()),
                     "memorisation_rate": float(np.mean([r["choices"][name]["memorisation_rate"] for r in runs])),
                     "vs_default": _paired(diffs), "wins": int((diffs < 0).sum()), "losses": int((diffs > 0).sum())}
    return out


def study(paths: list[Path], *, max_memorisation_rate: float) -> dict[str, Any]:
    """Replay every generator run (pseudo-families ``real-*`` are not generators) of each file."""
    files: dict[str, Any] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
            stores = data["stores"]
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(f"{path}: not a bench_generators.py results file ({exc}); pass one written by that script") from None
        per_store: dict[str, Any] = {}
        for store, entry in stores.items():
            runs, bar = [], []
            for family, seeds in entry.get("runs", {}).items():
                if family.startswith("real-"):
                    continue
                for seed, run in seeds.items():
                    choices = replay(run.get("history", []), max_memorisation_rate=max_memorisation_rate)
                    if choices is not None:
                        runs.append({"family": family, "seed": int(seed), "choices": choices})
                    reached = nn1_bar(run.get("history", []), max_memorisation_rate=max_memorisation_rate)
                    if reached is not None:
                        bar.append(reached)
            if runs:
                per_store[store] = {"runs": runs, "summary": summarise(runs),
                                    "nn1_bar": {"bar": NN1_BAR, "runs": len(bar), **{k: sum(b[k] for b in bar) for k in ("eligible", "copying", "any_copying")}}}
        files[path.name] = per_store
    return {"default_rule": DEFAULT_RULE, "max_memorisation_rate": max_memorisation_rate, "test_reading": TEST_KEY, "files": files}


def table(result: dict[str, Any]) -> str:
    lines = []
    for name, stores in result["files"].items():
        for store, entry in stores.items():
            lines.append(f"{name} · {store} · {len(entry['runs'])} runs · test-patient MMD^2 of the chosen checkpoint")
            lines.append(f"  {'rule':<18}{'test MMD^2':>11}{'memo':>7}   vs {result['default_rule']} [95% t]      wins/losses")
            for rule, s in entry["summary"].items():
                d = s["vs_default"]
                lines.append(f"  {rule:<18}{s['test_mmd']:>11.3f}{s['memorisation_rate']:>7.2f}   "
                             f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]   {s['wins']}/{s['losses']}")
            b = entry["nn1_bar"]
            if b["runs"]:
                lines.append(f"  {NN1_KEY} <= {b['bar']:g} reached by an eligible checkpoint in {b['eligible']} of {b['runs']} runs, "
                             f"by a copying one in {b['copying']} of the {b['any_copying']} runs that had one")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, nargs="+", default=[RESULTS / n for n in DEFAULT_INPUTS],
                    help="bench_generators.py results files (default: the calibrated, 4x and tuning studies)")
    ap.add_argument("--max-memorisation-rate", type=float, default=GanParams().max_memorisation_rate)
    ap.add_argument("--out", type=Path, default=RESULTS / "selection.json")
    a = ap.parse_args(argv)
    result = study(a.results, max_memorisation_rate=a.max_memorisation_rate)
    print(table(result))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    tmp.replace(a.out)
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
