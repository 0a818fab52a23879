"""The report's tables: the per-arm table, generator families side by side, per-patient fidelity with
intervals, frame-level fidelity and privacy, the patient-level privacy audit and the withheld
generators, each as (header, rows) of strings, with the note that explains it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from lusynth.report.words import (
    FAMILY_NAMES,
    as_written,
    ci_cell,
    fmt,
    gate_word,
    generators_of,
    interval,
    metric_header,
    pair,
    pct,
    pvalue,
    sig,
    signed,
)


def table_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The per-arm table: one row per training fraction x arm, one column per metric (estimate and CI)."""
    t = results["table"]
    metrics = [m for m in t.get("metrics", []) if m]
    level = t.get("level", "patient")
    header = ["training fraction", "arm", "training runs"] + [metric_header(m, level) for m in metrics]
    body = []
    for row in t.get("rows", []):
        for arm in t.get("arms", []):
            cell = row.get("cells", {}).get(arm)
            if not cell:
                continue
            runs = next((c.get("n_runs") for c in cell.values() if isinstance(c, Mapping) and c.get("n_runs") is not None), None)
            body.append([f"{row['fraction']:g}", arm, fmt(runs)] +
                        [f"{fmt(cell[m]['mean'])} {interval(cell[m].get('lo'), cell[m].get('hi'), cell[m].get('too_few_patients'))}"
                         if m in cell else "" for m in metrics])
    return header, body


FAMILIES_NOTE = ("Each family's GANs were trained on the same folds, classes and patients, and its synthetic arms scored on the "
                  "same test patients against the same real classifiers. Verdicts in capitals at the primary fraction, "
                  "secondary (exploratory) ones at the other fractions; privacy: the audit's "
                  "decision of every generator of the family at that fraction (all classes and folds); copy rate: the mean over those "
                  "generators of the share of their unfiltered frames that the patient audit counts as near-copies of a training "
                  "frame (about the audit's calibration percentile for a generator that copies no more than new patients resemble "
                  "training ones; far above it, what a generator closer to real may be buying its closeness with); fidelity: the mean over those "
                  "generators of the leave-one-patient-out 1-NN accuracy of their frames against the test patients in the real classifier's "
                  "embedding, beside the same test for the validation patients (what new real patients score): with a few patients "
                  "per fold, new real patients read far from 0.5 and a collapsed generator can read 0.5 exactly, so compare a "
                  "family with that floor, not with 0.5; the floor is a lower bound, not the ideal: a perfect generator (one frame "
                  "from each of many new patients) reads above it, on the phantom (benchmarks/results) by about 0.06 with 6 test "
                  "patients per class and 0.2 with 2-3; fine detail: the mean absolute Laplacian of the synthetic frames divided by "
                  "the real test frames' (1 = as much detail at the 1-2 pixel scale as real frames; well below 1, blurred frames, "
                  "which on few patients can read closer to unseen patients than other real patients do).")


def family_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per generator family and training fraction: the questions' verdicts (primary
    fraction; with a (c) column when families were compared head to head: "reference" in the
    reference family's rows), the privacy decisions of its generators, the mean copy rate of their
    unfiltered output (the patient audit's), their mean patient-level 1-NN accuracy beside the
    real floor's (``fidelity_patient``; "-" where no generator of the row has one) and their frames'
    mean fine detail relative to the real test frames': fidelity, copying and blur side by side,
    because on few patients a generator gets closer to unseen patients mainly by copying training
    ones or by blurring them together (benchmarks/results/README.md, "Checkpoint selection",
    "Half-size FastGAN")."""
    p = results.get("protocol") or {}
    families = list(p.get("generators") or [])
    fractions: list[Any] = sorted({float(a["fraction"]) for a in (*results.get("audits", []), *results.get("withheld", []))
                                   if a.get("fraction") is not None})
    comparisons = {q["generator"]: q for q in results.get("comparisons", [])}
    ref = str(next((q.get("baseline_generator") for q in comparisons.values()), ""))
    asked = ["a", "b"] + (["c"] if comparisons else [])
    header = ["generator family", "training fraction", "(a) real+synthetic vs real", "(b) synthetic vs real",
              *([f"(c) real+synthetic vs {FAMILY_NAMES.get(ref, ref)}'s"] if comparisons else []), "privacy (per generator)",
              "copy rate, unfiltered (↓)", "1-NN accuracy embedding, per patient: synthetic / real floor",
              "fine detail, synthetic ÷ real (1 = real)"]
    body = []
    for g in families:
        qs = {q["question"]: q for q in results.get("questions", []) if q.get("generator") == g}
        if g in comparisons:
            qs["c"] = comparisons[g]
        for f in fractions or [p.get("primary_fraction")]:
            verdicts = []
            for k in asked:
                q = qs.get(k) or {}
                if k == "c" and g == ref:
                    verdicts.append("reference")
                elif q.get("fraction") == f:
                    verdicts.append(f"{q['verdict'].upper()} {signed(q['estimate'])}")
                else:
                    # another fraction: the question's secondary on the same arm and endpoint (Holm-adjusted, exploratory)
                    s = next((x for x in q.get("secondary", [])
                              if x.get("fraction") == f and x.get("metric") == q.get("metric") and x.get("arm", q.get("arm")) == q.get("arm")), None)
                    verdicts.append(f"{s['verdict']} {signed(s['estimate'])} (secondary)" if s else "")
            mine, held = generators_of(results.get("audits"), g, f), generators_of(results.get("withheld"), g, f)
            words = [gate_word(a.get("gate") or {}) for a in mine] + ["withheld (memorises)"] * len(held)
            privacy = ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words)) if words else "-"
            body.append([FAMILY_NAMES.get(g, g), as_written(f), *verdicts, privacy, _mean_copy_rate(mine), _patient_nn1_pair(mine),
                         _mean_sharpness_ratio(mine)])
    return header, body


FIDELITY_NOTE = ("Each generator's frames against its fold's test patients of its class: the leave-one-patient-out 1-NN accuracy "
                  "in the fold's real classifier's embedding (lower is closer to real; the real floor is what the fold's validation "
                  "patients, new real patients, read), with intervals. A cell is one generator: one outer split, class, fraction and GAN seed. Each "
                  "split's value is the mean over its cells; the estimate is the mean over splits, with the Nadeau-Bengio corrected "
                  "t interval over splits (as for the questions; none from a single split). − real floor: the family minus the "
                  "validation patients in the same cells. − reference: the family minus the reference family in the cells both "
                  "measured (same split, class and GAN seed), so negative means closer to real than the reference. Cells: measured "
                  "cells over splits; a class needs 2 test and 2 validation patients in a split to be measured. Fine detail: "
                  "the same estimate of the frames' mean absolute Laplacian relative to the real test frames', over every "
                  "audited generator (well below 1: blurred frames, which can read closer to new patients than real ones do). "
                  "Training per GAN: the medians of its optimiser steps, its compute (steps x batch x the family's FLOPs per "
                  "image and step, machine-independent) and the seconds those steps took on the machine that trained it "
                  "(evaluations excluded): the budget each family had.")


def fidelity_family_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per generator family and training fraction: its per-patient 1-NN accuracy, minus the
    real floor and minus the reference family, each with its interval over the outer splits
    (``fidelity_families``, :func:`lusynth.stats.fidelity.family_fidelity`)."""
    entries = list(results.get("fidelity_families") or [])
    ref = str(entries[0].get("reference", "dcgan")) if entries else "dcgan"
    level = next((e[q]["level"] for e in entries for q in ("synthetic", "minus_floor") if e.get(q, {}).get("level")), 0.95)
    header = ["generator family", "training fraction", "cells (splits)", f"1-NN accuracy per patient [{pct(level)}% CI] (↓)",
              "− real floor", f"− {FAMILY_NAMES.get(ref, ref)}", "fine detail, synthetic ÷ real (1 = real)",
              "training per GAN, median: steps · TFLOP · seconds"]

    def cell(e: Mapping[str, Any] | None, difference: bool) -> str:
        if not e:
            return "-"
        ci = e.get("ci") or [None, None]
        return f"{(signed if difference else fmt)(e.get('estimate'))} {interval(ci[0], ci[1], False)}"

    body = [[FAMILY_NAMES.get(e["generator"], e["generator"]), as_written(e["fraction"]),
             f"{n['n_cells']} ({n['n_splits']})" if (n := e.get("synthetic")) else "0", cell(e.get("synthetic"), False),
             cell(e.get("minus_floor"), True), "reference" if e["generator"] == ref else cell(e.get("minus_reference"), True),
             cell(e.get("fine_detail"), False),
             _training_cost(generators_of(results.get("audits"), e["generator"], e["fraction"]))]
            for e in entries]
    return header, body


def _training_cost(audits: Sequence[Mapping[str, Any]]) -> str:
    """"steps · TFLOP · seconds": the medians over ``audits`` of their GANs' training cost
    (:func:`lusynth.evaluate.run.training_cost`), "-" for a part none has."""
    costs = [c for a in audits if (c := a.get("training"))]

    def median(name: str, spec: str) -> str:
        values = [float(c[name]) for c in costs if c.get(name) is not None]
        return format(statistics.median(values), spec) if values else "-"

    return "-" if not costs else f"{median('steps', '.0f')} · {median('tflop', '.3g')} · {median('seconds', '.0f')}"


def _mean_copy_rate(audits: Sequence[Mapping[str, Any]]) -> str:
    """The mean over ``audits`` of the patient audit's copy rate (the share of a generator's unfiltered
    frames nearer a training frame than unseen patients' frames come), "-" where none has one."""
    rates = [float(r) for a in audits if (r := ((a.get("patient_audit") or {}).get("copy_rate") or {}).get("copy_rate")) is not None]
    return fmt(sum(rates) / len(rates)) if rates else "-"


def _mean_sharpness_ratio(audits: Sequence[Mapping[str, Any]]) -> str:
    """The mean over ``audits`` of the synthetic frames' fine detail divided by the real test frames'
    (:func:`lusynth.metrics.fidelity.sharpness`), "-" where none has both."""
    ratios = [float(f["sharpness"]) / float(f["sharpness_holdout"]) for a in audits
              if (f := a.get("fidelity") or {}).get("sharpness") is not None and f.get("sharpness_holdout")]
    return fmt(sum(ratios) / len(ratios), 2) if ratios else "-"


def _patient_nn1_pair(audits: Sequence[Mapping[str, Any]]) -> str:
    """"synthetic / real floor": the mean over ``audits`` of the embedding's leave-one-patient-out 1-NN
    accuracy of the synthetic frames and of the validation patients (both against the test patients)."""
    pairs = [(float(e["synthetic"]["nn1_accuracy"]), float(e["real_floor"]["nn1_accuracy"]))
             for a in audits if (e := (a.get("fidelity_patient") or {}).get("embedding"))]
    if not pairs:
        return "-"
    return f"{fmt(sum(p[0] for p in pairs) / len(pairs))} / {fmt(sum(p[1] for p in pairs) / len(pairs))}"


def fidelity_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Frame-level fidelity per generator (all in the real classifier's feature space or pixels)."""
    header = ["generator", "MMD² pixels (↓)", "MMD² embedding (↓)", "1-NN accuracy pixels (0.5 ideal)",
              "1-NN accuracy embedding (0.5 ideal)", "FID embedding (↓)", "KID embedding (↓)", "confidence synthetic / real test (↑)",
              "fine detail synthetic / real test (equal ideal)"]
    body = []
    for a in results.get("audits", []):
        f = a.get("fidelity") or {}
        body.append([a["name"], sig(f.get("mmd_pixels")), sig(f.get("mmd_embed")), fmt(f.get("nn1_pixels")), fmt(f.get("nn1_embed")),
                     sig(f.get("fid_embed")), sig(f.get("kid_embed")), pair(f.get("confidence"), f.get("confidence_holdout")),
                     pair(f.get("sharpness"), f.get("sharpness_holdout"), sig)])
    return header, body


def privacy_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Frame-level privacy figures per generator, with the gate's word."""
    header = ["generator", "near-copy rate (↓)", "distance attack AUC (0.5 ideal)", "discriminator attack AUC (0.5 ideal)",
              "median distance to training: synthetic / real test (↑)", "privacy gate"]
    body = []
    for a in results.get("audits", []):
        v = a.get("privacy") or {}
        body.append([a["name"], fmt(v.get("memorisation_rate")), fmt(v.get("distance_mia_auc")), fmt(v.get("discriminator_mia_auc")),
                     pair(v.get("median_dcr_synthetic"), v.get("median_dcr_holdout"), sig), gate_word(a.get("gate") or {})])
    return header, body


def patient_audit_rows(results: Mapping[str, Any]) -> tuple[tuple[list[str], list[list[str]]], tuple[list[str], list[list[str]]]]:
    """From `lusynth audit` (patient level): per generator the decision and memorisation; per
    generator x membership attack its AUC, p and TPR at low FPR."""
    h1 = ["generator", "decision", "patients (training / unseen)", "copy rate [95% CI] (↓)",
          "closer to a training than an unseen patient (0.5 ideal; patient p)"]
    h2 = ["generator", "attack", "membership AUC [CI] (0.5 ideal)", "permutation p", "TPR at 1% FPR [CI] (↓)", "TPR at 10% FPR [CI] (↓)"]
    b1, b2 = [], []
    for a in results.get("audits", []):
        pa = a.get("patient_audit")
        if not pa:
            continue
        closer = pa.get("closer_to_training") or {}
        pts = (pa.get("n") or {}).get("patients") or {}
        b1.append([a["name"], str(pa.get("decision", "?")).replace("_", " "), f"{pts.get('member', '?')} / {pts.get('nonmember', '?')}",
                   ci_cell(pa.get("copy_rate")), f"{fmt(closer.get('share'))} ({pvalue(closer.get('patient_permutation_p_value'))})"])
        for attack, m in sorted((pa.get("membership") or {}).items()):
            tpr = m.get("tpr_at_fpr", {})
            b2.append([a["name"], attack, ci_cell(m), pvalue(m.get("p_value")), ci_cell(tpr.get("0.01"), 2), ci_cell(tpr.get("0.1"), 2)])
    return (h1, b1), (h2, b2)


WITHHELD_NOTE = ("`generate` released no frame of these generators: its near-copy filter rejected almost everything they drew, "
                  "so they are treated as memorising their training patients (the privacy audit of their unfiltered output says "
                  "what it can show). The classifiers that needed their frames were not trained, and every "
                  "estimate that involves those cells is over the other folds only (the 'per fold' rows show which): read it as "
                  "conditional on a generator that does not memorise. A withheld generator fails the privacy gate and is registered "
                  "with no alias.")


def withheld_lines(results: Mapping[str, Any]) -> list[str]:
    """One line per withheld generator (why, and the audit's decision on its unfiltered output) and per classifier not trained."""
    out = []
    for w in results.get("withheld", []):
        pa = w.get("patient_audit") or {}
        audit = f" The privacy audit of its unfiltered output: {str(pa['decision']).replace('_', ' ')}." if pa.get("decision") else ""
        out.append(f"{w['name']}: withheld: {w['reason']}.{audit}")
    out += [f"classifier {c['name']}: not trained ({c['reason']})" for c in results.get("skipped_classifiers", [])]
    return out


PATIENT_AUDIT_NOTE = ("`lusynth audit` of each GAN's unfiltered output: members = the patients that trained it, non-members = "
                       "unseen (holdout) patients, near-copy threshold calibrated on the validation patients. PASS only when every "
                       "upper bound is under its limit, FAIL when a lower bound is over it, otherwise insufficient evidence. "
                       "TPR: the share of training patients an attacker finds at a 1% or 10% false positive rate.")


def patient_fidelity_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """Rows per generator x feature space, and a note per generator that could not be measured."""
    header = ["generator", "features", "1-NN accuracy: synthetic (read against the floor)", "1-NN accuracy: real floor", "MMD² synthetic (p)",
              "MMD² real floor (p)", "test / floor patients"]
    body, skipped = [], []
    for a in results.get("audits", []):
        f = a.get("fidelity_patient") or {}
        for space in ("pixels", "embedding"):
            if space in f:
                syn, floor = f[space]["synthetic"], f[space]["real_floor"]
                body.append([a["name"], space, fmt(syn.get("nn1_accuracy")), fmt(floor.get("nn1_accuracy")),
                             f"{sig(syn.get('mmd2'))} ({pvalue(syn.get('mmd_p_value'))})",
                             f"{sig(floor.get('mmd2'))} ({pvalue(floor.get('mmd_p_value'))})",
                             f"{f.get('n_test_patients', '?')} / {f.get('n_floor_patients', '?')}"])
        if f.get("skipped"):
            skipped.append(f"{a['name']}: {f['skipped']}")
    return header, body, skipped


PATIENT_FIDELITY_NOTE = ("Synthetic frames vs the test patients' frames, beside validation patients vs the same test patients (the floor: "
                          "what new real patients score; a perfect generator, drawing each frame from a new patient, reads somewhat above it). "
                          "1-NN accuracy leaves out the whole patient (0.5 = indistinguishable); MMD² uses "
                          "one bandwidth fixed from real training frames, so values compare across GANs; p from permutations that move a "
                          "patient's frames together.")
