"""The paper's questions, answered from the long table of patient-level scores.

(a) Does adding synthetic frames help?  *Superiority* of ``added`` (default ``real+synthetic``)
    over ``baseline`` (default ``real``) at the primary fraction, on the primary endpoint.
(b) Can synthetic-only training approach real training?  *Non-inferiority* of ``replacement``
    (default ``synthetic``) to ``baseline`` with margin ``margin`` (default 0.05 AUC).

The primary endpoint (metric, default patient-level AUC) and the primary fraction (default the
smallest: scarce real data) are fixed before the data are seen, so each question has exactly one
confirmatory test and no multiplicity; every other metric and fraction is a secondary endpoint of
its question, with Holm-adjusted p-values (statsmodels) over that question's secondaries. A
secondary uses the same hypothesis and margin as its question (the margin in the metric's units).

Generator families (the score table's ``generator``: ``dcgan``, ``fastgan``) are compared on the
same patients: each question is asked once per family, its synthetic arm read from that family's
GANs and its baseline the same ``real`` classifiers. With m > 1 families a question has m
confirmatory tests, and a reader will pick the family that looks best, so each family's primary is
decided at the Bonferroni level ``1 - (1 - level) / m``: the chance that *any* family is wrongly
called superior (or non-inferior) stays at most ``(1 - level) / 2``. Secondaries stay Holm-adjusted
within their question and family.

(c) When a family other than the paper's DCGAN was trained, is it at least as good? *Non-inferiority*
    of ``added`` from that family's GANs to ``added`` from the DCGAN's (``reference_generator``),
    same margin, on the same splits and bootstrap resamples (paired: the same test patients and real
    folds). One confirmatory test per other family at the primary fraction and endpoint, Bonferroni
    over the other families; the other fractions and metrics and the ``replacement`` arm are its
    Holm-adjusted secondaries. "Superior" is reported when the whole interval is above 0.
Estimation and tests are :mod:`lusynth.stats.inference`; resampling :mod:`lusynth.stats.bootstrap`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lusynth.stats.bootstrap import METRICS, RunMetrics, run_metrics, stratified_weights
from lusynth.stats.inference import Estimate, SplitValue, combine, decide, holm, split_value
from lusynth.stats.scores import RUN, check_scores

QUESTIONS = {
    "a": ("superiority", "does adding synthetic frames to the real ones help (superiority)?"),
    "b": ("non-inferiority", "can synthetic-only training replace real training (non-inferiority)?"),
    "c": ("non-inferiority", "is this generator family at least as good as the paper's DCGAN (non-inferiority)?"),
}


@dataclass(frozen=True)
class AnalysisParams:
    """What the analysis is told before it sees the data (the pre-specification)."""

    primary_metric: str = "auc"
    secondary_metrics: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "f1")
    margin: float = 0.05
    level: float = 0.95
    power: float = 0.8
    n_resamples: int = 1000
    seed: int = 0
    min_patients_per_class: int = 5
    primary_fraction: float | None = None  # None: the smallest fraction in the table
    baseline: str = "real"
    added: str = "real+synthetic"
    replacement: str = "synthetic"
    reference_generator: str = "dcgan"  # (c): the family every other one is compared with

    def __post_init__(self) -> None:
        for m in (self.primary_metric, *self.secondary_metrics):
            if m not in METRICS:
                raise ValueError(f"metric {m!r}: choose from {', '.join(METRICS)}")
        if not 0 <= self.margin < 1:
            raise ValueError(f"margin={self.margin}: a difference in [0, 1), e.g. 0.05 AUC")
        if not 0 < self.power < 1:
            raise ValueError(f"power={self.power}: a probability, e.g. 0.8")
        if self.n_resamples < 10:
            raise ValueError(f"n_resamples={self.n_resamples}: use at least 10 (1000 for reporting)")


@dataclass
class _Split:
    labels: np.ndarray
    n_train: int
    runs: dict[tuple[str, str, float], list[RunMetrics]]  # (arm, generator, fraction) -> runs (GAN seed x classifier seed)


class Analysis:
    """Per-split bootstrap metrics of every run, computed once; estimates and tests on demand."""

    def __init__(self, table: pd.DataFrame, params: AnalysisParams | None = None) -> None:
        self.params = params or AnalysisParams()
        self.table = t = check_scores(table)
        if t.empty:
            raise ValueError("score table is empty: no classifier scored any test patient")
        self.splits: dict[tuple[int, int], _Split] = {}
        per_repeat = t.drop_duplicates(["repeat", "patient_id"]).groupby("repeat").size()
        pid, lab = t["patient_id"].to_numpy(), t["label"].to_numpy()
        score, thr = t["score"].to_numpy(), t["threshold"].to_numpy()
        by_split: dict[tuple[int, int], list[tuple[tuple[Any, ...], np.ndarray]]] = {}
        for key, idx in sorted(t.groupby(list(RUN), sort=True).indices.items()):  # one pass over the table
            by_split.setdefault((int(key[0]), int(key[1])), []).append((key, idx))
        for (rep, fold), runs_idx in by_split.items():
            rows = np.concatenate([idx for _, idx in runs_idx])
            ids, first = np.unique(pid[rows], return_index=True)
            labels = lab[rows][first]
            rng = np.random.default_rng([self.params.seed, rep, fold])
            w = stratified_weights(labels, n_resamples=self.params.n_resamples, rng=rng)  # one set per split: paired arms
            runs: dict[tuple[str, str, float], list[RunMetrics]] = {}
            for key, idx in runs_idx:
                if idx.size != ids.size:  # check_scores rules out duplicates, so a short run misses patients
                    raise ValueError(f"score table: in fold {fold} of repeat {rep} run {key[2:]} scored {idx.size} of the "
                                     f"{ids.size} test patients; every classifier of a fold must score all of them")
                sc = np.empty(ids.size)
                sc[np.searchsorted(ids, pid[idx])] = score[idx]
                runs.setdefault((str(key[2]), str(key[4]), float(key[3])), []).append(run_metrics(labels, sc, float(thr[idx[0]]), w))
            self.splits[(rep, fold)] = _Split(labels, int(per_repeat.loc[rep]) - ids.size, runs)
        pats = t[t["repeat"] == t["repeat"].min()].drop_duplicates("patient_id")
        self.n_positive = int((pats["label"] == 1).sum())
        self.n_negative = int((pats["label"] == 0).sum())
        self.n_repeats = int(t["repeat"].nunique())
        # the paper's DCGAN first, then the other families: the order of the report's columns and verdicts
        self.generators: list[str] = sorted(set(t["generator"]) - {""}, key=lambda g: (g != "dcgan", g))
        self._gan_arms = set(t.loc[t["generator"] != "", "arm"])

    @property
    def arms(self) -> list[str]:
        return sorted({a for s in self.splits.values() for a, _, _ in s.runs})

    @property
    def fractions(self) -> list[float]:
        return sorted({f for s in self.splits.values() for _, _, f in s.runs})

    def _family(self, arm: str, generator: str | None) -> str:
        """The generator column of ``arm``'s runs: ``""`` for an arm without GANs, else ``generator``
        (which may be left out when the table has one family)."""
        if arm not in self._gan_arms:
            return ""
        if generator is None:
            if len(self.generators) != 1:
                raise ValueError(f"arm {arm!r} was trained on {len(self.generators)} generator families "
                                 f"({', '.join(self.generators)}); say which")
            return self.generators[0]
        return generator

    def arm_label(self, arm: str, generator: str) -> str:
        """How the report names an arm: with its family in brackets unless it has no GAN or the run's only family is the paper's DCGAN."""
        return arm if generator == "" or self.generators == ["dcgan"] else f"{arm} [{generator}]"

    def protocol(self) -> dict[str, Any]:
        """Folds, repeats, seeds and the pre-specification, as run."""
        t, p = self.table, self.params
        gan = t[t["arm"] != p.baseline]["gan_seed"].nunique() if (t["arm"] != p.baseline).any() else 0
        return {"folds": int(t.groupby("repeat")["fold"].nunique().max()), "repeats": self.n_repeats,
                "gan_seeds": int(gan), "classifier_seeds": int(t["classifier_seed"].nunique()), "generators": list(self.generators),
                "primary_level": self.primary_level(), "reference_generator": p.reference_generator,
                "comparison_level": self.comparison_level(),
                "primary_endpoint": f"patient-level {p.primary_metric}", "primary_fraction": self.primary_fraction(),
                "margin": p.margin, "level": p.level, "power": p.power, "n_resamples": p.n_resamples,
                "min_patients_per_class": p.min_patients_per_class, "baseline": p.baseline}

    def primary_fraction(self) -> float:
        """The pre-specified fraction, or the smallest one in the table."""
        f = self.params.primary_fraction
        if f is None:
            return self.fractions[0]
        if f not in self.fractions:
            raise ValueError(f"primary_fraction={f:g} is not a fraction of this experiment ({', '.join(f'{x:g}' for x in self.fractions)})")
        return f

    def primary_level(self) -> float:
        """The confidence level each family's primary test is decided at: ``level``, Bonferroni-split over the families."""
        return 1.0 - (1.0 - self.params.level) / max(1, len(self.generators))

    def challengers(self) -> list[str]:
        """The families question (c) compares with ``reference_generator`` (none when it was not trained)."""
        ref = self.params.reference_generator
        return [g for g in self.generators if g != ref] if ref in self.generators else []

    def comparison_level(self) -> float:
        """The confidence level of each (c) primary test: ``level``, Bonferroni-split over the challengers."""
        return 1.0 - (1.0 - self.params.level) / max(1, len(self.challengers()))

    def _combine(self, values: list[Any], *, difference: bool, level: float | None = None) -> Estimate:
        # every metric here is a proportion in [0, 1]; a difference of two lies in [-1, 1]
        return combine(values, level=level or self.params.level, min_patients_per_class=self.params.min_patients_per_class,
                       n_patients=(self.n_positive, self.n_negative), bounds=(-1.0, 1.0) if difference else (0.0, 1.0))

    def estimate(self, arm: str, fraction: float, metric: str, *, versus: str | None = None, generator: str | None = None,
                 level: float | None = None, versus_generator: str | None = None) -> Estimate | None:
        """``arm``'s metric (minus ``versus``'s, paired) at ``fraction``, for the synthetic arms from
        ``generator``'s GANs (``versus`` from ``versus_generator``'s, default the same); None when an
        arm is missing. ``level``: the interval's (default ``params.level``)."""
        return self._estimate_per_fold(arm, fraction, metric, versus=versus, generator=generator, level=level,
                                       versus_generator=versus_generator)[0]

    def _estimate_per_fold(self, arm: str, fraction: float, metric: str, *, versus: str | None = None, generator: str | None = None,
                           level: float | None = None, versus_generator: str | None = None) -> tuple[Estimate | None, list[dict[str, Any]]]:
        """:meth:`estimate` and, from the same split values, each split's own value (the mean over its
        runs, a difference for a contrast; NaN where undefined) in (repeat, fold) order: the report's
        "per fold" row, empty with a single split."""
        values = self._split_values(arm, fraction, metric, versus=versus, generator=generator, versus_generator=versus_generator)
        if not values:
            return None, []
        folds = [{"repeat": r, "fold": k, "estimate": v.point} for (r, k), v in sorted(values.items())] if len(values) > 1 else []
        e = self._combine(list(values.values()), difference=versus is not None, level=level)
        # splits that trained the comparator but not this arm: cells skipped because generate withheld their GAN's frames
        missing = []
        if versus is not None:
            other = (versus, self._family(versus, versus_generator or generator), fraction)
            missing = sorted(k for k, s in self.splits.items() if k not in values and other in s.runs)
        if missing:
            e = dataclasses.replace(e, notes=(*e.notes, f"from {len(values)} of {len(values) + len(missing)} splits: no '{arm}' classifier "
                                              f"in {', '.join(f'fold {k} (repeat {r})' for r, k in missing)}, so the estimate is "
                                              "conditional on the splits that have one (a withheld generator's cells are not trained)"))
        return e, folds

    def _split_values(self, arm: str, fraction: float, metric: str, *, versus: str | None, generator: str | None,
                      versus_generator: str | None) -> dict[tuple[int, int], SplitValue]:
        """Per split (repeat, fold) that trained the arm(s): :func:`split_value`."""
        out = {}
        ka = (arm, self._family(arm, generator), fraction)
        kb = (versus, self._family(versus, versus_generator or generator), fraction) if versus is not None else None
        for split, s in self.splits.items():
            a = s.runs.get(ka)
            b = s.runs.get(kb) if kb is not None else None
            if a is None or (versus is not None and b is None):
                continue
            out[split] = split_value(a, b, metric, n_test=s.labels.size, n_train=s.n_train,
                                     n_positive=int(s.labels.sum()), n_negative=int((s.labels == 0).sum()))
        return out

    def table_cells(self, metrics: Sequence[str] = ("auc", "accuracy", "f1", "sensitivity", "specificity")) -> dict[str, Any]:
        """Per fraction and arm (a synthetic arm once per generator family, named by :meth:`arm_label`):
        each metric's estimate with its interval (the per-arm table, learning curve)."""
        columns = [(arm, g) for arm in self.arms for g in (self.generators if arm in self._gan_arms else [""])]
        rows = []
        for f in self.fractions:
            cells: dict[str, Any] = {}
            for arm, g in columns:
                per = {m: self.estimate(arm, f, m, generator=g) for m in metrics}
                if all(v is None for v in per.values()):
                    continue
                cells[self.arm_label(arm, g)] = {m: _cell(e) for m, e in per.items() if e is not None}
            rows.append({"fraction": f, "cells": cells})
        return {"level": "patient", "threshold": "val", "metrics": list(metrics), "arms": [self.arm_label(a, g) for a, g in columns],
                "generators": list(self.generators), "ci": self.params.level, "rows": rows}

    def questions(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The confirmatory answer to (a) and (b) per generator family (the question's order, then the
        families'), each with its Holm-adjusted secondaries; and why any is skipped."""
        p = self.params
        out, skipped = [], []
        f0 = self.primary_fraction()
        for q, arm in (("a", p.added), ("b", p.replacement)):
            hypothesis, text = QUESTIONS[q]
            margin = p.margin if hypothesis == "non-inferiority" else 0.0
            for g in (self.generators if arm in self._gan_arms else [None]):
                e, per_fold = self._estimate_per_fold(arm, f0, p.primary_metric, versus=p.baseline, generator=g, level=self.primary_level())
                if e is None:
                    family = f" of the {g} family" if g and len(self.generators) > 1 else ""
                    skipped.append(f"({q}) {text} not asked: no '{arm}'{family} and '{p.baseline}' classifiers at fraction {f0:g}")
                    continue
                d = decide(e, hypothesis=hypothesis, margin=margin, power=p.power, effect_of_interest=p.margin)
                entry = _entry(q, text, arm, p.baseline, f0, p.primary_metric, e, d.as_dict(), generator=g or "")
                entry["per_fold"] = per_fold
                secondary = []
                for f in self.fractions:
                    for m in (p.primary_metric, *p.secondary_metrics):
                        if f == f0 and m == p.primary_metric:
                            continue
                        es = self.estimate(arm, f, m, versus=p.baseline, generator=g)
                        if es is not None:
                            ds = decide(es, hypothesis=hypothesis, margin=margin, power=p.power, effect_of_interest=p.margin)
                            secondary.append(_entry(q, text, arm, p.baseline, f, m, es, ds.as_dict(), generator=g or ""))
                for s, adj in zip(secondary, holm([s["p_value"] for s in secondary], alpha=1 - p.level), strict=True):
                    s["p_value_holm"] = adj
                entry["secondary"] = secondary
                out.append(entry)
        return out, skipped

    def comparisons(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Question (c) per challenger family: its ``added`` arm against the reference family's
        (non-inferiority, primary fraction and endpoint, at :meth:`comparison_level`), with the other
        fractions, metrics and the ``replacement`` arm as Holm-adjusted secondaries; and why any is skipped."""
        p = self.params
        ref = p.reference_generator
        hypothesis, text = QUESTIONS["c"]
        out, skipped = [], []
        f0 = self.primary_fraction()
        arms = [a for a in (p.added, p.replacement) if a in self._gan_arms]
        if self.challengers() and p.added not in self._gan_arms:
            return [], [f"(c) {text} not asked: no '{p.added}' classifiers trained on GANs"]
        for g in self.challengers():
            e, per_fold = self._estimate_per_fold(p.added, f0, p.primary_metric, versus=p.added, generator=g, versus_generator=ref,
                                                  level=self.comparison_level())
            if e is None:
                skipped.append(f"(c) {text} not asked for {g}: no '{p.added}' classifiers of both {g} and {ref} at fraction {f0:g}")
                continue
            d = decide(e, hypothesis=hypothesis, margin=p.margin, power=p.power, effect_of_interest=p.margin)
            entry = _entry("c", text, p.added, p.added, f0, p.primary_metric, e, d.as_dict(), generator=g) | {"baseline_generator": ref}
            entry["per_fold"] = per_fold
            secondary = []
            for arm in arms:
                for f in self.fractions:
                    for m in (p.primary_metric, *p.secondary_metrics):
                        if (arm, f, m) == (p.added, f0, p.primary_metric):
                            continue
                        es = self.estimate(arm, f, m, versus=arm, generator=g, versus_generator=ref)
                        if es is not None:
                            ds = decide(es, hypothesis=hypothesis, margin=p.margin, power=p.power, effect_of_interest=p.margin)
                            secondary.append(_entry("c", text, arm, arm, f, m, es, ds.as_dict(), generator=g) | {"baseline_generator": ref})
            for s, adj in zip(secondary, holm([s["p_value"] for s in secondary], alpha=1 - p.level), strict=True):
                s["p_value_holm"] = adj
            entry["secondary"] = secondary
            out.append(entry)
        return out, skipped

    def report(self) -> dict[str, Any]:
        """Everything report.json needs: protocol, n_patients, questions (a, b), the family comparisons (c), the per-arm table."""
        qs, skipped = self.questions()
        cs, cskipped = self.comparisons()
        return {"protocol": self.protocol(), "n_patients": {"positive": self.n_positive, "negative": self.n_negative},
                "questions": qs, "skipped": skipped, "comparisons": cs, "skipped_comparisons": cskipped, "table": self.table_cells()}


def _cell(e: Estimate) -> dict[str, Any]:
    return {"mean": e.estimate, "lo": e.ci[0], "hi": e.ci[1], "se": e.se, "too_few_patients": e.too_few_patients,
            "n_runs": e.n_runs, "n_splits": e.n_splits, "n_undefined": e.n_undefined}


def _entry(q: str, text: str, arm: str, baseline: str, fraction: float, metric: str, e: Estimate, d: dict[str, Any], *,
           generator: str = "") -> dict[str, Any]:
    return {"question": q, "text": text, "arm": arm, "generator": generator, "baseline": baseline, "fraction": fraction, "metric": metric,
            "endpoint": f"patient-level {metric}", "verdict": d["verdict"], "estimate": e.estimate, "ci": list(e.ci),
            "ci_label": e.as_dict()["ci_label"], "min_detectable_difference": d["min_detectable_difference"],
            "p_value": d["p_value"], "hypothesis": d["hypothesis"], "margin": d["margin"], "power": d["power_at_margin"], "power_against": d["power_against"],
            "reason": d["reason"], "method": e.method, "se": e.se, "df": e.df, "level": e.level,
            "training_variance": e.training_variance, "n_splits": e.n_splits, "n_runs": e.n_runs,
            "n_resamples": e.n_resamples, "n_undefined": e.n_undefined, "notes": list(e.notes)}


def analyse(table: pd.DataFrame, params: AnalysisParams | None = None) -> dict[str, Any]:
    """The whole analysis of a score table (see :meth:`Analysis.report`)."""
    return Analysis(table, params).report()
