"""Estimates with intervals that include training variance, p-values, verdicts and power.

Two sources of variance make a metric (or a difference of metrics between two arms) move: which
patients are tested, and how training went (which patients were trained on, the GAN seed, the
classifier seed). The estimator is the mean over splits (repeat, fold) of the per-split value,
where a split's value is the mean over its training runs (GAN seeds x classifier seeds) of the
metric on that split's test patients (a difference of such means for a contrast of two arms).

Its standard error depends on the protocol:

* **several splits** (K-fold cross-validation, optionally repeated): the corrected resampled
  t-test of Nadeau & Bengio (2003), as recommended for repeated K-fold by Bouckaert & Frank
  (2004): ``se^2 = (1/J + n_test/n_train) s^2`` over the J split values, ``J - 1`` degrees of
  freedom. The split values already contain every source of variance -- test patients, training
  patients (folds overlap in training patients, which the ``n_test/n_train`` term corrects for),
  GAN and classifier seeds -- so nothing is modelled separately. A mixed model was not chosen:
  with 2-5 folds and 1-3 seeds its variance components are poorly identified and its degrees of
  freedom are themselves an approximation, while the corrected t-test has a documented size.
* **one split** (a single train/holdout split): the class-stratified patient bootstrap gives the
  test-patient variance of the run-mean (every run scored on the same resamples, so paired), and
  the variance between runs at fixed test patients, divided by the number of runs, is added as the
  training variance (zero, and said so, when there is a single run per arm). Which patients were
  trained on is not sampled by one split; the report says so.

Intervals are Wald intervals ``estimate +/- q se`` with ``q`` the t (or normal) quantile, and the
p-values come from the same t (or normal) reference distribution: proper tests, not shares of
bootstrap resamples. Verdicts: (a) *superiority* of one arm over another, H0: difference <= 0;
(b) *non-inferiority* with margin delta, H0: difference <= -delta (one-sided at alpha/2, i.e. the
lower end of the two-sided interval above -delta: the CONSORT convention, equivalent to one side
of a TOST at the same level). An inconclusive verdict states the minimum detectable difference:
the true difference a one-sided test at alpha/2 detects with the requested power at this standard
error, ``(q_{1-alpha/2} + q_{power}) se``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

from lusynth.stats.bootstrap import RunMetrics

VERDICTS = ("superior", "non-inferior", "inferior", "inconclusive")
TOO_FEW = "too few patients"


@dataclass(frozen=True)
class SplitValue:
    """One split's value of a metric (one arm) or of a difference (arm A minus arm B)."""

    point: float  # mean over runs (difference of run means for a contrast)
    replicates: np.ndarray  # the same, per bootstrap resample of the split's test patients (R,)
    training_var: float  # variance of ``point`` from training at fixed test patients (between runs / n runs)
    n_runs: int  # training runs behind it (both arms for a contrast)
    single_run: bool  # an arm with one run: training variance not sampled at fixed test patients
    n_test: int  # test patients of the split
    n_train: int  # training patients of the split (the other folds' patients)
    n_positive: int
    n_negative: int


def _run_mean(runs: Sequence[RunMetrics], metric: str) -> tuple[float, np.ndarray, float]:
    points = np.array([r.point[metric] for r in runs], dtype=np.float64)
    reps = np.mean(np.stack([r.replicates[metric] for r in runs]), axis=0)  # NaN in any run -> NaN resample
    var = float(np.var(points, ddof=1) / len(points)) if len(points) > 1 and np.isfinite(points).all() else 0.0
    return float(np.mean(points)), reps, var


def split_value(a: Sequence[RunMetrics], b: Sequence[RunMetrics] | None, metric: str, *, n_test: int, n_train: int,
                n_positive: int, n_negative: int) -> SplitValue:
    """Arm ``a``'s runs (minus arm ``b``'s when given) on one split: point, replicates, training variance."""
    if not a or (b is not None and not b):
        raise ValueError("split_value needs at least one run per arm")
    pa, ra, va = _run_mean(a, metric)
    if b is None:
        return SplitValue(pa, ra, va, len(a), len(a) == 1, n_test, n_train, n_positive, n_negative)
    pb, rb, vb = _run_mean(b, metric)
    return SplitValue(pa - pb, ra - rb, va + vb, len(a) + len(b), min(len(a), len(b)) == 1, n_test, n_train,
                      n_positive, n_negative)


@dataclass(frozen=True)
class Estimate:
    """A combined estimate with its standard error, reference distribution and interval."""

    estimate: float
    se: float
    df: float  # degrees of freedom of the t reference; inf = normal
    ci: tuple[float, float]
    level: float  # confidence level of ``ci``
    method: str
    n_splits: int
    n_runs: int
    n_positive: int  # distinct test patients per class
    n_negative: int
    n_resamples: int
    n_undefined: int  # bootstrap resamples in which the value was undefined (0 under cross-validation)
    too_few_patients: bool
    training_variance: str  # what training variance the interval includes, in words
    notes: tuple[str, ...] = field(default=())

    def quantile(self, p: float) -> float:
        """Quantile of the reference distribution (t with ``df``, or normal)."""
        return float(st.norm.ppf(p) if not math.isfinite(self.df) else st.t.ppf(p, self.df))

    def sf(self, x: float) -> float:
        """Upper tail of the reference distribution."""
        return float(st.norm.sf(x) if not math.isfinite(self.df) else st.t.sf(x, self.df))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the interval labelled when there are too few patients)."""
        d = asdict(self)
        d["ci"] = list(self.ci)
        d["ci_label"] = TOO_FEW if self.too_few_patients else None
        d["notes"] = list(self.notes)
        return d


def combine(splits: Sequence[SplitValue], *, level: float = 0.95, min_patients_per_class: int = 5,
            n_patients: tuple[int, int] | None = None, bounds: tuple[float, float] | None = None) -> Estimate:
    """Combine split values: Nadeau-Bengio over several splits, bootstrap + run variance for one.

    ``bounds`` = the range the value can take (``(0, 1)`` for an AUC, ``(-1, 1)`` for a difference of
    two): the interval is cut to it (the true value lies inside, so cutting never lowers coverage; a
    t interval from a few splits otherwise reads e.g. AUC [-0.27, 1.27]).

    ``n_patients`` = distinct (positive, negative) test patients (default: summed over splits,
    right for one repeat); fewer than ``min_patients_per_class`` of either labels the interval
    "too few patients" and makes every verdict on it inconclusive.
    """
    if not splits:
        raise ValueError("combine needs at least one split")
    if not 0.5 <= level < 1:
        raise ValueError(f"level={level}: a confidence level in [0.5, 1), e.g. 0.95")
    j = len(splits)
    points = np.array([s.point for s in splits], dtype=np.float64)
    n_pos, n_neg = n_patients or (sum(s.n_positive for s in splits), sum(s.n_negative for s in splits))
    n_runs = int(sum(s.n_runs for s in splits))
    n_res = int(splits[0].replicates.size)
    notes: list[str] = []
    n_undefined = 0
    if j >= 2:
        est = float(np.mean(points))
        ratio = float(np.mean([s.n_test / s.n_train for s in splits])) if all(s.n_train > 0 for s in splits) else float("nan")
        s2 = float(np.var(points, ddof=1)) if np.isfinite(points).all() else float("nan")
        se = math.sqrt((1.0 / j + ratio) * s2) if math.isfinite(s2) and math.isfinite(ratio) else float("nan")
        df = float(j - 1)
        method = "nadeau-bengio corrected resampled t-test over splits"
        training = "all of it: test and training patients, GAN and classifier seeds (spread between splits)"
        if not np.isfinite(points).all():
            notes.append(f"{int((~np.isfinite(points)).sum())} of {j} split(s) undefined")
    else:
        s = splits[0]
        est = float(s.point)
        finite = s.replicates[np.isfinite(s.replicates)]
        n_undefined = int(s.replicates.size - finite.size)
        boot_var = float(np.var(finite, ddof=1)) if finite.size > 1 else float("nan")
        se = math.sqrt(boot_var + s.training_var) if math.isfinite(boot_var) else float("nan")
        df = math.inf
        method = "class-stratified patient bootstrap (paired) + between-run variance, normal reference"
        training = ("GAN/classifier seeds at fixed training patients; which patients were trained on is not sampled "
                    "(one split)") if not s.single_run else "none: one training run per arm, one split"
        if n_undefined:
            notes.append(f"{n_undefined} of {s.replicates.size} bootstrap resamples undefined (left out of the standard error)")
    too_few = min(n_pos, n_neg) < min_patients_per_class
    if too_few:
        notes.append(f"{TOO_FEW}: {n_pos} positive and {n_neg} negative test patients, fewer than {min_patients_per_class} per class")
    if math.isfinite(se) and se == 0.0:
        # a spread of exactly 0 is not a precise estimate but none at all: a zero-width interval would
        # claim certainty, so there is no interval (NaN bounds; decide() calls the verdict inconclusive)
        notes.append(f"no variability: the {j} splits gave the same value, and the interval is built from their spread"
                     if j >= 2 else "no variability: every resample and run gives the same value (e.g. AUC 1 everywhere)")
    q = float(st.norm.ppf(0.5 + level / 2) if not math.isfinite(df) else st.t.ppf(0.5 + level / 2, df))
    ci = (est - q * se, est + q * se) if math.isfinite(se) and se > 0 else (float("nan"), float("nan"))
    if bounds is not None and math.isfinite(se) and se > 0 and (ci[0] < bounds[0] or ci[1] > bounds[1]):
        ci = (max(ci[0], bounds[0]), min(ci[1], bounds[1]))
        notes.append(f"interval cut to the value's range [{bounds[0]:g}, {bounds[1]:g}]")
    return Estimate(est, se, df, ci, level, method, j, n_runs, n_pos, n_neg, n_res, n_undefined, too_few, training, tuple(notes))


@dataclass(frozen=True)
class Decision:
    """A hypothesis test of an estimate (a difference between arms): p-value, verdict, power."""

    hypothesis: str  # "superiority" | "non-inferiority"
    margin: float  # 0 for superiority
    p_value: float  # one-sided, from the estimate's reference distribution
    verdict: str  # one of VERDICTS
    min_detectable_difference: float
    power_at_margin: float  # power of this test when the true difference is ``power_against``
    power_against: float  # the effect of interest (superiority) or 0 (non-inferiority)
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def decide(e: Estimate, *, hypothesis: str, margin: float, power: float = 0.8, effect_of_interest: float | None = None) -> Decision:
    """Superiority (H0: diff <= 0) or non-inferiority (H0: diff <= -margin) of an estimated difference.

    Both are one-sided at ``(1 - e.level) / 2``, i.e. decided by the two-sided interval, so the
    verdict and the printed interval always agree. ``effect_of_interest`` (default ``margin``) is
    the true improvement at which the superiority test's power is reported.
    """
    if hypothesis not in ("superiority", "non-inferiority"):
        raise ValueError(f"hypothesis {hypothesis!r}: choose 'superiority' or 'non-inferiority'")
    if not margin >= 0:
        raise ValueError(f"margin={margin}: a non-negative difference, e.g. 0.05 AUC")
    alpha = 1.0 - e.level
    shift = 0.0 if hypothesis == "superiority" else margin
    q = e.quantile(1 - alpha / 2)
    usable = math.isfinite(e.se) and e.se > 0
    # no detectable difference can be stated without a usable standard error or with too few patients
    mdd = (q + e.quantile(power)) * e.se if usable and not e.too_few_patients else float("nan")
    target = (effect_of_interest if effect_of_interest is not None else margin) if hypothesis == "superiority" else 0.0
    if not usable or e.too_few_patients:
        p = float("nan")
        pw = float("nan")
    else:
        p = e.sf((e.estimate + shift) / e.se)
        pw = e.sf(q - (target + shift) / e.se)
    lo, hi = e.ci
    lvl = f"{100 * e.level:.4g}%"  # 95%, 97.5% (a Bonferroni level), not rounded to 98%
    bound = f"{-shift:g}" if shift else "0"  # not "-0" for superiority
    if e.too_few_patients:
        verdict, reason = "inconclusive", f"{TOO_FEW} for a meaningful interval"
    elif not usable:
        verdict, reason = "inconclusive", "no standard error (" + ("; ".join(e.notes) or "undefined") + ")"
    elif lo > 0:
        verdict, reason = "superior", f"the whole {lvl} interval is above 0"
    elif hypothesis == "non-inferiority" and lo > -margin:
        verdict, reason = "non-inferior", f"the whole {lvl} interval is above -{margin:g}"
    elif hi < -shift:
        verdict, reason = "inferior", f"the whole {lvl} interval is below {bound}"
    else:
        verdict = "inconclusive"
        reason = (f"the {lvl} interval covers {bound}; a true difference of {mdd:.3f} would be detected "
                  f"with {power:.0%} power at this sample size")
    return Decision(hypothesis, margin if hypothesis == "non-inferiority" else 0.0, p, verdict, mdd, pw, target, reason)


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm-adjusted p-values (statsmodels); undefined p-values stay NaN and are not in the family."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return [float(v) for v in out]
