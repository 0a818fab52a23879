"""The questions in words: one sentence per verdict, each question's rows (effect with its interval,
patients, folds and seeds, power, method), the protocol line, the budget a family comparison was
made at, and the secondary endpoints.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from lusynth.report.words import (
    FAMILY_NAMES,
    RunPaths,
    all_questions,
    as_written,
    fmt,
    generators_of,
    has_interval,
    interval,
    pct,
    pvalue,
    question_arm,
    question_baseline,
    several_families,
    signed,
)


def question_sentences(results: Mapping[str, Any]) -> list[str]:
    """One plain sentence per question, (a) and (b) then the family comparisons (c): verdict, effect
    with CI, p-value, and (if inconclusive) the detectable difference; then why any was not asked."""
    out = []
    for q in all_questions(results):
        lvl = pct(q["level"])
        if q.get("ci_label"):
            ci = "too few patients for an interval"
        elif not has_interval(*q["ci"]):
            ci = f"no interval: {q.get('reason', 'no standard error')}"
        else:
            ci = f"{lvl}% CI {signed(q['ci'][0])} to {signed(q['ci'][1])}"
        test = ("superiority" if q["hypothesis"] == "superiority" else f"non-inferiority, margin {q['margin']:g}")
        s = (f"({q['question']}) {question_arm(q, results)} vs {question_baseline(q)}, {q['endpoint']} at fraction {q['fraction']:g}: "
             f"{q['verdict'].upper()}; difference {signed(q['estimate'])} ({ci}; one-sided p = {pvalue(q['p_value'])}, {test})")
        if q["verdict"] == "inconclusive" and q.get("min_detectable_difference") is None:
            s += "; no detectable difference can be stated at this sample size"
        elif q["verdict"] == "inconclusive" and q["min_detectable_difference"] >= 1.0:
            # a difference of two proportions is at most 1: none within the range is detectable
            s += (f"; at this sample size not even the largest possible difference (1) would be detected with "
                  f"{int(round(results.get('protocol', {}).get('power', 0.8) * 100))}% power "
                  f"(minimum detectable {fmt(q['min_detectable_difference'])})")
        elif q["verdict"] == "inconclusive":
            s += (f"; at this sample size only a true difference of {fmt(q['min_detectable_difference'])} or more would be "
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
    mine, theirs = ([c for a in generators_of(audits, g, fraction) if (c := a.get("training"))] for g in (family, reference))
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


def protocol_line(results: Mapping[str, Any]) -> str:
    p, n = results.get("protocol") or {}, results.get("n_patients") or {}
    if not p:
        return ""
    return (f"Test patients: {n.get('positive', '?')} positive, {n.get('negative', '?')} negative. Protocol: {p.get('folds', '?')} "
            f"fold(s) x {p.get('repeats', '?')} repeat(s), {p.get('gan_seeds', '?')} GAN seed(s), {p.get('classifier_seeds', '?')} "
            f"classifier seed(s)" + (f", generator families {', '.join(FAMILY_NAMES.get(g, g) for g in p['generators'])} on the same "
                                    f"patients (each family's primary test at the Bonferroni level {pct(p.get('primary_level'))}%)"
                                    if len(p.get("generators") or []) > 1 else "") + f". Primary endpoint: {p.get('primary_endpoint', '?')} at fraction {as_written(p.get('primary_fraction'))}, "
            f"pre-specified; non-inferiority margin {as_written(p.get('margin'))}; intervals below {p.get('min_patients_per_class', '?')} "
            "patients per class are labelled 'too few patients'." + (f" Design: {p['design']}; {p.get('n_patients_tested', '?')} of "
                                                                     f"{p.get('n_patients_total', '?')} patients tested out of fold."
                                                                     if p.get("design") else ""))


def question_rows(q: Mapping[str, Any], results: Mapping[str, Any], paths: RunPaths) -> list[tuple[str, str]]:
    """One question as label/value rows: verdict, effect with CI, patients per class, folds and
    seeds, the margin, power; then the method and its notes."""
    p, n = results.get("protocol") or {}, results.get("n_patients") or {}
    power = p.get("power", 0.8)
    lvl = pct(q.get("level", p.get("level")))
    ci = q.get("ci") or [None, None]
    superiority = q.get("hypothesis") == "superiority"
    rows = [("verdict", f"{str(q.get('verdict', '?')).upper()}: {paths.text(str(q.get('reason', '')))}"),
            (f"effect ({q.get('endpoint', '?')})",
             f"{question_arm(q, results)} minus {question_baseline(q)} at training fraction {as_written(q.get('fraction'))}: {signed(q.get('estimate'))}, "
             f"{lvl}% CI {interval(ci[0], ci[1], q.get('ci_label') is not None)}; one-sided p = {pvalue(q.get('p_value'))}"),
            ("test patients per class", f"{n.get('positive', '?')} positive, {n.get('negative', '?')} negative "
                                        f"(an interval needs at least {p.get('min_patients_per_class', '?')} per class)"),
            ("folds and seeds", f"{p.get('folds', '?')} fold(s) x {p.get('repeats', '?')} repeat(s); {p.get('gan_seeds', '?')} GAN "
                                f"seed(s), {p.get('classifier_seeds', '?')} classifier seed(s); {q.get('n_splits', '?')} split(s), "
                                f"{q.get('n_runs', '?')} training run(s)"),
            ("hypothesis and margin", "superiority: is the difference above 0?" if superiority else
             f"non-inferiority with margin δ = {as_written(q.get('margin'))}: is the difference above -{as_written(q.get('margin'))}?"),
            ("power", f"{fmt(q['power'] * 100, 0) + '%' if q.get('power') is not None else 'n/a'} to show "
                      f"{'superiority when the true gain is ' if superiority else 'non-inferiority when the true difference is '}"
                      f"{signed(q.get('power_against'))}; minimum detectable difference at {pct(power)}% power: "
                      f"{fmt(q.get('min_detectable_difference'))}"),
            ("method", f"{q.get('method', '?')}; training variance included: {q.get('training_variance', '?')}; "
                       f"{q.get('n_resamples', '?')} resamples, {q.get('n_undefined', '?')} undefined")]
    per_fold = q.get("per_fold")
    if isinstance(per_fold, list) and per_fold and all(isinstance(x, Mapping) for x in per_fold):
        # each split's own difference (Analysis.per_fold; absent with one split): how consistent the effect is across folds
        rows.append(("per fold", "; ".join(f"fold {x.get('fold', i)}" + (f" (repeat {x['repeat']})" if x.get("repeat") else "")
                                           + f": {signed(x.get('estimate'))}" for i, x in enumerate(per_fold))))
    rows += [("note", paths.text(str(x))) for x in q.get("notes", [])]
    return rows


COMPARISON_NOTE = ("Head to head on the same test patients: the family's real+synthetic classifiers minus the DCGAN's, paired "
                    "per fold (the same real frames and bootstrap resamples), by the same method as (a) and (b). Non-inferiority "
                    "with the protocol's margin answers \"at least as good as the DCGAN\"; with several other families each is "
                    "decided at the Bonferroni level. Other fractions, metrics and the synthetic-only arm are in the secondary table. "
                    "The verdict's sentence states the compute each family had (the median training seconds and TFLOP of its "
                    "GANs at that fraction over the DCGAN's): at unequal compute a family may win by the compute alone.")


def secondary_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    lvl = pct((results.get("protocol") or {}).get("level", 0.95))
    header = ["question", "training fraction", "endpoint", "difference (arm − baseline)", f"{lvl}% CI", "one-sided p", "p (Holm)", "verdict"]
    body = []
    for q in all_questions(results):
        name = f"{q['question']} [{FAMILY_NAMES.get(q['generator'], q['generator'])}]" if q.get("generator") and several_families(results) \
            else q["question"]
        for s in q.get("secondary", []):
            if s.get("baseline_generator"):  # (c): the arm varies among the secondaries
                name = f"c: {question_arm(s, results)} − {question_baseline(s)}"
            ci = s.get("ci") or [None, None]
            body.append([name, f"{s['fraction']:g}", s["endpoint"], signed(s.get("estimate")),
                         interval(ci[0], ci[1], s.get("ci_label") is not None), pvalue(s.get("p_value")), pvalue(s.get("p_value_holm")),
                         s.get("verdict", "?")])
    return header, body
