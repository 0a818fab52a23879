"""``evaluate``: holdout metrics of every classifier, the paper's table, the audit, the report.

Reads the real frame store, the classifier directories, and optionally GAN directories and
synthetic frame stores; writes ``out_dir`` atomically (report.html / report.md / report.json /
figures/*.png) and logs the run to MLflow. Works with no GAN at all (a real-only experiment).

GANs and synthetic sets are matched by :class:`~lusynth.keys.GanKey` (class, training fraction):
a :class:`~lusynth.gan.run.GanRun` has one, a :class:`~lusynth.gan.synthetic.SyntheticSet` one per
class it holds (:func:`audit_targets`). The embedding and the confidence score come from the
``real`` classifier of the largest fraction (lowest seed), so every GAN is measured in the same
feature space.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lusynth.atomic import atomic_dir
from lusynth.classifier.run import ClassifierRun
from lusynth.classifier.train import LoadedClassifier, load_classifier
from lusynth.data.framestore import FrameStore, open_store
from lusynth.errors import InputError
from lusynth.evaluate.audit import audit_synthetic, gate_audit
from lusynth.evaluate.holdout import HoldoutPrediction, metrics_json, predict_holdout, roc_json, score_rows
from lusynth.evaluate.params import EvaluateParams
from lusynth.evaluate.result import SCORES_FILE, Evaluation
from lusynth.gan.checkpoint import discriminator_scorer
from lusynth.gan.run import GanRun
from lusynth.gan.synthetic import SyntheticSet
from lusynth.keys import GanKey, family_tag
from lusynth.metrics.fidelity import fidelity_with_floor, reference_gamma
from lusynth.metrics.nearcopy import NearCopyPolicy
from lusynth.params import as_dict
from lusynth.progress import note
from lusynth.report import plots
from lusynth.report.render import HTML_FILE, write_report
from lusynth.report.verdicts import question_sentences
from lusynth.report.words import figure_tag
from lusynth.runtime import RunContext
from lusynth.stats.fidelity import family_fidelity
from lusynth.stats.questions import Analysis
from lusynth.tracking import log_frame_store_input, log_to_parent, optional_stage_run, run_name


def _class_probability(emb: LoadedClassifier, label: str) -> Any:
    """The reference classifier's probability of class ``label`` per uint8 frame."""
    positive = label == emb.positive_class

    def prob(frames: np.ndarray) -> np.ndarray:
        p = emb.predict_proba(frames)
        return p if positive else 1.0 - p

    return prob


def _subsample(rows: np.ndarray, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(rows, k, replace=False)) if len(rows) > k else rows


def _patient_fidelity(real: FrameStore, label: str, syn: np.ndarray, params: EvaluateParams,
                      spaces: dict[str, tuple[Any, float]], fold: int = 0) -> dict[str, Any]:
    """Synthetic frames of ``label`` vs the GAN's fold's test patients' frames, beside its inner
    validation vs test patients (the floor: real patients the GAN did not see either)."""
    test_rows = _subsample(real.view(fold, "test", label=label), params.audit_max_frames, params.seed)
    val_rows = _subsample(real.view(fold, "val", label=label), params.audit_max_frames, params.seed)
    pid = real.manifest["patient_id"].astype(str).to_numpy()
    n_test, n_val = len(set(pid[test_rows])), len(set(pid[val_rows]))
    if n_test < 2 or n_val < 2 or len(test_rows) < 4 or len(val_rows) < 4 or len(syn) < 4:
        # leave-one-patient-out needs another patient on each real side
        return {"skipped": f"too few patients: class {label!r} has {n_test} test and {n_val} validation patient(s) "
                           f"({len(test_rows)} and {len(val_rows)} frames); per-patient fidelity needs 2 and 4 of each"}
    syn = syn[_subsample(np.arange(len(syn)), params.audit_max_frames, params.seed)]
    test, val = np.asarray(real.frames[test_rows]), np.asarray(real.frames[val_rows])
    out: dict[str, Any] = {"n_test_patients": int(len(set(pid[test_rows]))), "n_floor_patients": int(len(set(pid[val_rows])))}
    for space, (feat, gamma) in spaces.items():
        out[space] = fidelity_with_floor(feat(test), pid[test_rows], feat(val), pid[val_rows], feat(syn), gamma=gamma,
                                         n_permutations=params.fidelity_permutations, max_rows=params.fidelity_max_rows, seed=params.seed)
    return out


def _fidelity_spaces(real: FrameStore, emb: LoadedClassifier | None, params: EvaluateParams) -> dict[str, tuple[Any, float]]:
    """Feature maps, each with its MMD bandwidth fixed once from real training frames (those of
    outer split 0, whichever GAN is audited: comparable across GANs and folds)."""
    rows = _subsample(real.view(0, "train"), min(params.audit_max_frames, 1000), params.seed)
    ref = np.asarray(real.frames[rows])

    def pixels(frames: np.ndarray) -> np.ndarray:
        return np.asarray(frames, dtype=np.float64).reshape(len(frames), -1) / 255.0

    spaces: dict[str, tuple[Any, float]] = {"pixels": (pixels, reference_gamma(pixels(ref)))}
    if emb is not None:
        spaces["embedding"] = (emb.embed, reference_gamma(emb.embed(ref)))
    return spaces


def _embedder(classifiers: Sequence[LoadedClassifier], fold: int = 0) -> LoadedClassifier | None:
    """The reference network of outer split ``fold``: its real-arm classifier at the largest
    fraction (lowest seed), trained without the fold's test patients."""
    real = [c for c in classifiers if c.arm == "real" and c.cell.fold == fold]
    return max(real, key=lambda c: (c.fraction, -c.seed)) if real else None


@dataclass(frozen=True)
class AuditTarget:
    """One generator's output to audit: one class of a synthetic set, and its GAN if given."""

    key: GanKey
    synthetic: SyntheticSet
    gan: GanRun | None


def audit_targets(gans: Sequence[GanRun], synthetic: Sequence[SyntheticSet]) -> list[AuditTarget]:
    """Every class of every synthetic set, paired with the GAN of the same :class:`GanKey` when
    given (a two-class set from ``generate --gan A --gan B`` gives two targets); every GAN given
    must have made some class of some set."""
    by_key: dict[GanKey, GanRun] = {}
    for g in gans:
        if g.key in by_key:
            raise InputError(f"two GAN directories for {g.key}: {by_key[g.key].path} and {g.path}; pass each GAN once")
        by_key[g.key] = g
    targets = [AuditTarget(k, s, by_key.get(k)) for s in synthetic for k in s.keys]
    seen = [t.key for t in targets]
    dup = sorted({str(k) for k in seen if seen.count(k) > 1})
    if dup:
        raise InputError(f"several synthetic sets hold frames of {', '.join(dup)}; pass one set per GAN")
    missing = [str(g.path) for k, g in by_key.items() if k not in seen]
    if missing:
        raise InputError(f"no synthetic set given for GAN(s) {', '.join(missing)}; run `lusynth generate` and pass its output with --synthetic")
    return targets


def _gate_from_audit(audit: Any) -> dict[str, Any] | None:
    """The privacy gate of a synthetic set as its :class:`~lusynth.privacy.run.Audit` decided it (None: no audit)."""
    if audit is None:
        return None
    return {"passed": audit.passed, "decision": audit.decision, "reasons": list(audit.report.get("reasons", [])),
            "notes": [f"decided by the privacy audit {audit.path}"], "checks": audit.report.get("checks", [])}


def _coverage(real: FrameStore, classifiers: Sequence[LoadedClassifier]) -> dict[str, Any]:
    """The outer protocol as run: its design, and how many patients got an out-of-fold prediction
    (all of them when every fold of every repeat was evaluated)."""
    splits = sorted({c.cell.fold for c in classifiers})
    tested = real.patients(np.concatenate([real.view(f, "test") for f in splits]))
    everyone = set(real.manifest["patient_id"].astype(str))
    design = (f"patient-level stratified {real.folds}-fold cross-validation" + (f", {real.repeats} repeats" if real.repeats > 1 else "")
              if real.folds >= 2 else "single train/validation/holdout split (legacy: one holdout, training-set variance not sampled)")
    return {"design": design, "outer_splits_evaluated": len(splits), "outer_splits": real.n_splits,
            "n_patients_tested": len(tested), "n_patients_total": len(everyone),
            "every_patient_tested": tested == everyone}


def frame_confusion(pred: HoldoutPrediction) -> dict[str, list[list[int]]]:
    """Frame-level confusion matrix ``[[tn, fp], [fn, tp]]`` at 0.5 and at the classifier's
    validation threshold (``prob >= threshold`` is positive, as everywhere in lusynth.metrics)."""
    from sklearn.metrics import confusion_matrix

    return {which: confusion_matrix(pred.y, (pred.prob >= t).astype(np.int64), labels=[0, 1]).tolist()
            for which, t in (("0.5", 0.5), ("val", pred.val_threshold))}


def run_metadata(frames_digest: str, mlflow_run_id: str | None, out_dir: Path, frames_dir: Path) -> dict[str, Any]:
    """What run a report is of, for its header: the time (UTC), the code's git commit, the MLflow
    run ids (this stage's, the pipeline's), the KFP run id, the data digest, and the run directory
    (the deepest folder holding the frame store and this output; the report shows paths relative to it)."""
    from datetime import UTC, datetime

    from lusynth.tracking import git_commit, kfp_run_id
    from lusynth.tracking.runs import PARENT_RUN_ENV
    from lusynth.util import run_directory

    return {"date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), "git_commit": git_commit(),
            "mlflow_run_id": mlflow_run_id, "pipeline_run_id": os.environ.get(PARENT_RUN_ENV) or None, "kfp_run_id": kfp_run_id(),
            "frames_digest": frames_digest, "run_dir": run_directory(out_dir, frames_dir)}


def evaluate(
    frames_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    classifier_dirs: Sequence[str | os.PathLike[str]],
    gan_dirs: Sequence[str | os.PathLike[str]] = (),
    synthetic_dirs: Sequence[str | os.PathLike[str]] = (),
    params: EvaluateParams | None = None,
    near_copy: NearCopyPolicy | None = None,
    progress: bool = True,
    ctx: RunContext | None = None,
    audit_dirs: Sequence[str | os.PathLike[str]] = (),
) -> Evaluation:
    """Evaluate every classifier on the real holdout, audit every GAN (near-copies by ``near_copy``), write the report.

    ``audit_dirs``: privacy audits (``lusynth audit``) of the synthetic sets; a synthetic set with
    one gets that audit's decision as its privacy gate (pass only on ``pass``) instead of the
    legacy point-estimate gate, which remains only for sets given without an audit."""
    params = params or EvaluateParams()
    near_copy = near_copy or NearCopyPolicy()
    ctx = ctx or RunContext()
    device, _ = ctx.start(device="cpu", threads=1)  # evaluation is light: the CPU and one thread unless told otherwise
    if not classifier_dirs:
        raise InputError("evaluate needs at least one classifier directory (--classifier DIR, from `lusynth train-classifier`)")
    real = open_store(frames_dir)
    runs = [ClassifierRun.load(d) for d in classifier_dirs]
    skipped = [r for r in runs if r.skipped]  # cells whose synthetic frames generate withheld: named in the report
    if len(skipped) == len(runs):
        raise InputError(f"evaluate: none of the {len(runs)} classifier(s) given was trained ({skipped[0].cell}: {skipped[0].skipped}); "
                         "give at least one trained classifier (a `real` arm needs no GAN)")
    classifiers = [load_classifier(r.path, device=device) for r in runs if not r.skipped]
    names = [str(c.cell) for c in classifiers]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"two classifier directories share the grid cell(s) {dup}; pass each grid cell once")
    targets = audit_targets([GanRun.load(g) for g in gan_dirs], [SyntheticSet.load(s) for s in synthetic_dirs])
    out_dir = Path(out_dir)

    # the run is open for the whole work: its duration is the stage's, and a failure ends it FAILED
    with optional_stage_run(ctx.track, stage="evaluate", local_dir=out_dir.parent, out_dir=out_dir, run_name=run_name("evaluate"),
                            params={"frames_digest": real.digest, **as_dict(params), "near_copy": as_dict(near_copy),
                                    "n_classifiers": len(classifiers), "n_audits": len(targets)}) as tr:
        log_frame_store_input(tr, real, "holdout")
        for syn in {t.synthetic.store.digest: t.synthetic.store for t in targets}.values():
            log_frame_store_input(tr, syn, "synthetic")
        results, figures, scores = _assess(real, classifiers, targets, params=params, near_copy=near_copy, progress=progress,
                                           inputs=(classifier_dirs, gan_dirs, synthetic_dirs, audit_dirs), skipped=skipped)
        results["config"]["mlflow_run_id"] = tr.run_id
        results["run"] = run_metadata(real.digest, tr.run_id, out_dir, real.path)
        with atomic_dir(out_dir) as tmp:
            art = write_report(tmp, results, figures)
            scores.to_csv(tmp / SCORES_FILE, index=False)
        metrics, tags = tracked_results(results)
        tr.log_metrics({**art.headline_metrics, **metrics})
        tr.set_tags(tags)
        # from the output, not the temporary folder: a spooled artifact is uploaded later, by path
        tr.log_artifact(out_dir, "report")
    if ctx.track:
        log_to_parent(metrics, tags)  # the pipeline's run shows the verdicts and primary metrics too
    note("evaluate", f"report: {out_dir / HTML_FILE}", enabled=progress)
    return Evaluation.load(out_dir)


def tracked_results(results: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """What MLflow shows of an evaluation beyond the headline numbers (pure): per arm and fraction the
    mean and confidence bounds of every table metric as metrics (``auc_real_f0.5``, ``..._ci_low``,
    ``..._ci_high``), each question's estimate, bounds and p-value (named by :func:`question_key`:
    one name per question, family and fraction), and the verdicts as tags (``lusynth.verdict.q<n>``,
    ``lusynth.verdict.q<n>.<family>`` for a family other than the DCGAN: the sentence the report
    prints; ``lusynth.verdicts``: all, short)."""
    from lusynth.report.words import all_questions, question_key, slug

    metrics: dict[str, float] = {}
    for row in (results.get("table") or {}).get("rows", []):
        for arm, cell in row["cells"].items():
            for m, v in cell.items():
                key = f"{m}_{slug(arm)}_f{row['fraction']:g}"
                for suffix, field_ in (("", "mean"), ("_ci_low", "lo"), ("_ci_high", "hi")):
                    x = v.get(field_) if isinstance(v, dict) else None
                    if isinstance(x, (int, float)) and np.isfinite(x):
                        metrics[key + suffix] = float(x)
    tags: dict[str, str] = {}
    questions = all_questions(results)
    sentences = question_sentences({**results, "skipped_questions": [], "skipped_comparisons": []})
    short = []
    for q, sentence in zip(questions, sentences, strict=True):
        key = question_key(q)
        for suffix, x in (("", q.get("estimate")), ("_ci_low", (q.get("ci") or [None, None])[0]),
                          ("_ci_high", (q.get("ci") or [None, None])[1]), ("_p", q.get("p_value"))):
            if isinstance(x, (int, float)) and np.isfinite(x):
                metrics[key + suffix] = float(x)
        family = family_tag(slug(q.get("generator") or ""), ".")  # one tag per question and family
        tags[f"lusynth.verdict.q{q['question']}{family}"] = sentence
        versus = q["baseline"] + (f" {q['baseline_generator']}" if q.get("baseline_generator") else "")
        short.append(f"q{q['question']}{family} {q['arm']} vs {versus} (f{q['fraction']:g}): {q['verdict']}")
    if short:
        tags["lusynth.verdicts"] = "; ".join(short)
    gate = (results.get("privacy_gate") or {}).get("passed")
    if gate is not None:
        tags["lusynth.privacy_gate"] = "passed" if gate else "not passed"
    return metrics, tags


def training_cost(gan: GanRun | None) -> dict[str, Any] | None:
    """What one GAN's training cost, so families are compared at a stated budget: its optimiser steps and
    epochs; ``tflop``, steps x batch x its family's FLOPs per image and train step (machine-independent);
    ``seconds``, steps x batch / its measured throughput on its own machine (optimiser steps only: the
    evaluations and checkpoint writes between them are not counted). None without the GAN."""
    if gan is None:
        return None
    batch = int(gan.params.get("batch_size") or 0)
    per_image = float((gan.flops_per_image or {}).get("train_step") or 0.0)
    images = gan.steps * batch
    return {"steps": int(gan.steps), "epochs": int(gan.epochs),
            "tflop": images * per_image / 1e12 if images and per_image else None,
            "seconds": images / gan.images_per_second if images and gan.images_per_second else None}


def _assess(real: FrameStore, classifiers: list[LoadedClassifier], targets: list[AuditTarget], *, params: EvaluateParams,
            near_copy: NearCopyPolicy, progress: bool, inputs: tuple[Sequence[Any], Sequence[Any], Sequence[Any], Sequence[Any]],
            skipped: Sequence[ClassifierRun] = ()) -> tuple[dict[str, Any], dict[str, bytes], pd.DataFrame]:
    """The evaluation's work: holdout predictions, statistics, audits, figures; (results, figures, long score table).
    ``skipped``: cells not trained because generate withheld their synthetic frames (listed, never scored)."""
    classifier_dirs, gan_dirs, synthetic_dirs, audit_dirs = inputs
    note("evaluate", f"predicting each classifier's test patients ({len(classifiers)} classifier(s))", enabled=progress)
    tested_rows = np.unique(np.concatenate([real.view(f, "test") for f in sorted({c.cell.fold for c in classifiers})]))
    preds = [predict_holdout(real, c, batch_size=params.batch_size) for c in classifiers]
    scores = pd.concat([score_rows(p) for p in preds], ignore_index=True)
    try:
        analysis = Analysis(scores, params.analysis())
        stats = analysis.report()
    except ValueError as e:  # e.g. a primary_fraction that is not in the grid
        raise InputError(f"evaluate: {e}") from None
    table = stats["table"]
    clf_json = [{"name": p.name, "arm": p.arm, "fraction": p.fraction, "seed": p.seed, "ratio": p.ratio, "fold": p.fold, "repeat": p.repeat, "split": p.split,
                 "n_test_frames": int(len(p.y)), "n_test_patients": int(len(p.patients)),
                 "gan_seed": p.gan_seed, "generator": p.generator, "val_threshold": p.val_threshold, "patient_threshold": p.patient_threshold,
                 **p.meta, "metrics": metrics_json(p, params), "roc": roc_json(p)} for p in sorted(preds, key=lambda q: (q.fraction, q.arm, q.seed))]

    # frame-level confusion counts per threshold: the confusion matrix the KFP UI shows (Evaluation.kfp_classification)
    confusion = {p.name: frame_confusion(p) for p in preds}
    for c in clf_json:
        c["confusion"] = confusion[c["name"]]

    figures: dict[str, bytes] = {
        "learning_curve": plots.learning_curve(table),
        "roc": plots.roc_curves({c["name"]: c["roc"]["frame"] for c in clf_json}),
    }
    spaces_of: dict[int, dict[str, tuple[Any, float]]] = {}
    from lusynth.privacy.run import Audit

    audits_by_digest = {a.synthetic_digest: a for a in map(Audit.load, audit_dirs) if a.synthetic_digest}
    audits, withheld = [], []
    for t in targets:
        s = t.synthetic.store
        label, frac = t.key.label, t.key.fraction
        family = t.key.generator
        name = (f"gan {label} f={frac:g}" + (f" g={t.key.gan_seed}" if t.key.gan_seed else "") + (f" k={t.key.fold}" if t.key.fold else "")
                + family_tag(family, " "))
        tag = figure_tag(label, frac, t.key.gan_seed, t.key.fold, family)
        if label in t.synthetic.withheld:  # generate released nothing: no fidelity to measure; the audit stage saw its first round
            reason = t.synthetic.withheld[label]
            patient_audit = audits_by_digest.get(s.digest)
            withheld.append({"name": name, **t.key.as_dict(), "synthetic_dir": str(s.path), "synthetic_digest": s.digest,
                             "gan_dir": str(t.gan.path) if t.gan else None, "reason": reason,
                             "gate": {"passed": False, "decision": "fail", "reasons": [f"withheld by generate: {reason}"],
                                      "notes": ["generate released none of its frames"]},
                             "patient_audit": patient_audit.patient_summary() if patient_audit is not None else None})
            continue
        note("evaluate", f"auditing {name} ({len(s.indices(split='synthetic', label=label))} synthetic frames)", enabled=progress)
        syn = np.asarray(s.frames[s.indices(split="synthetic", label=label)])
        fold = t.key.fold
        emb = _embedder(classifiers, fold)
        if fold not in spaces_of:
            spaces_of[fold] = _fidelity_spaces(real, emb, params) if len(real.view(0, "train")) >= 2 else {}
        hold_rows = real.view(fold, "test", label=label)  # the GAN's fold's test patients: read here only
        hold = np.asarray(real.frames[hold_rows])
        train_rows = real.view(fold, "train", label=label, fraction=frac)
        train = np.asarray(real.frames[train_rows])
        class_prob = _class_probability(emb, label) if emb is not None else None
        disc = discriminator_scorer(t.gan.path) if t.gan is not None else None
        res = audit_synthetic(syn, hold, train, params=params, near_copy=near_copy, embed=(emb.embed if emb is not None else None),
                              class_prob=class_prob, discriminator=disc, holdout_groups=real.manifest["video_id"].to_numpy()[hold_rows],
                              train_patients=real.manifest["patient_id"].to_numpy()[train_rows])
        patient_audit = audits_by_digest.get(s.digest)
        gate = _gate_from_audit(patient_audit) or gate_audit(res["privacy"], params)
        if patient_audit is not None:  # its figures beside this GAN's (the audit saw the unfiltered output)
            figures |= {f"audit_{stem}_{tag}": png for stem, png in patient_audit.figures().items()}
        audits.append({"name": name, "label": label, "fraction": frac, "gan_seed": t.key.gan_seed, "fold": t.key.fold, "generator": family,
                       "synthetic_dir": str(s.path), "synthetic_digest": s.digest,
                       "gan_dir": str(t.gan.path) if t.gan else None,
                       "gan_run_id": t.gan.run_id if t.gan else None,
                       "embedding": str(emb.path) if emb is not None else None,
                       "fidelity": res["fidelity"], "fidelity_patient": _patient_fidelity(real, label, syn, params, spaces_of[fold], fold),
                       "privacy": res["privacy"], "near_copy": as_dict(near_copy), "n": res["n"], "gate": gate,
                       "patient_audit": patient_audit.patient_summary() if patient_audit is not None else None,
                       "fidelity_history": t.gan.history if t.gan else [], "training": training_cost(t.gan)})
        k = min(params.grid_frames, len(syn), len(hold))
        figures[f"samples_{tag}"] = plots.sample_grid(hold[:k], syn[:k], title=f"class {label}, {family} fraction {frac:g}")
        figures[f"dcr_{tag}"] = plots.dcr_histogram(res["dcr"]["synthetic"], res["dcr"]["holdout"],
                                                                 threshold=res["privacy"]["near_copy_threshold"], title=name)
        if t.gan and t.gan.history:
            figures[f"fidelity_{tag}"] = plots.fidelity_curves(t.gan.history, title=name, chosen_step=(t.gan.chosen or {}).get("step"),
                                                               max_memorisation_rate=(t.gan.selection or {}).get("max_memorisation_rate"))
    # per-patient fidelity per family with intervals over the outer splits (and head to head with the DCGAN)
    n_all = int(real.manifest["patient_id"].nunique())
    split_sizes = {k: (n, n_all - n) for k in sorted({int(a["fold"]) for a in audits}) if (n := len(real.patients(real.view(k, "test")))) > 0}
    fidelity_families = family_fidelity(audits, split_sizes)
    privacy = {"passed": (all(a["gate"]["passed"] for a in audits) and not withheld if audits or withheld else None),
               "reasons": [f"{a['name']}: {r}" for a in (*withheld, *audits) for r in a["gate"]["reasons"]],
               "thresholds": {k: v for k, v in as_dict(params).items() if k.startswith("gate_")}}
    results: dict[str, Any] = {
        "config": {"frames_dir": str(real.path), "frames_digest": real.digest, "params": as_dict(params), "near_copy": as_dict(near_copy),
                   "classifier_dirs": [str(d) for d in classifier_dirs], "gan_dirs": [str(d) for d in gan_dirs],
                   "synthetic_dirs": [str(d) for d in synthetic_dirs],
                   # out-of-fold: every test row of the evaluated outer splits (each scored only by its fold's models)
                   "n_holdout_frames": int(len(tested_rows)),
                   "n_holdout_patients": int(len(real.patients(tested_rows)))},
        "protocol": stats["protocol"] | _coverage(real, classifiers), "n_patients": stats["n_patients"], "questions": stats["questions"],
        "skipped_questions": stats["skipped"], "comparisons": stats["comparisons"], "skipped_comparisons": stats["skipped_comparisons"], "table": table, "classifiers": clf_json,
        "audits": audits, "fidelity_families": fidelity_families, "privacy_gate": privacy, "withheld": withheld,
        "skipped_classifiers": [{"name": str(r.cell), **r.cell.as_dict(), "dir": str(r.path), "reason": r.skipped} for r in skipped],
    }
    return results, figures, scores
