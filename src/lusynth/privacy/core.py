"""The privacy audit on arrays: memorisation of the unfiltered output and patient-level membership
inference, for any generator.

Real frames play one of three roles, by patient (the split of the frame store):

- ``member``: the generator's training patients;
- ``calibration``: patients used neither to train the generator nor to evaluate it (the store's
  ``val`` split): they calibrate the near-copy cut-off and are the reference set of the
  reference-model attack;
- ``nonmember``: unseen patients (the store's ``holdout`` split): the membership test's negatives.

Distances are taken within a class (a synthetic frame of class ``c`` against real frames of class
``c``; an unlabelled synthetic set against every real frame) and are **patient-aware**: the
near-copy cut-off comes from other patients' frames, the "closer" test counts nearest *patients*,
and the membership scores aggregate a patient's frames into one score, so the sample size of
every membership statistic is the number of patients.

Memorisation (one or more feature spaces): a synthetic frame is a near-copy when, in any audited
space, its patient-aware distance ratio (:func:`copy_ratio`: distance to the closest training
frame over the distance to the closest frame of another training patient) is below
``copy_margin`` times the ``percentile``-th percentile of the calibration frames' ratios; the copy rate gets a Clopper-Pearson interval (synthetic frames
are independent draws given the real data). The "closer" test: the share of synthetic frames
whose nearest patient, among an equal number of training and unseen (calibration and holdout)
patients of its class, is a training patient -- 0.5 without memorisation; binomial test over frames (the issue's test) and a
patient-level permutation p-value (valid however clustered the frames are).

Membership inference (pixel space by default; see :func:`run_audit`), one score per frame, the
patient's score the mean over its frames; higher = "more likely a member":

- *distance* (GAN-Leaks, Chen et al. 2020): ``-log(d_S / m)``, ``d_S`` the distance to the
  nearest synthetic frame of the class, ``m`` the median ``d_S`` of the class's calibration frames
  (so classes share one scale);
- *reference* (in the spirit of DOMIAS, van Breugel et al. 2023): ``log(d_R / d_S)``, ``d_R`` the
  distance to the nearest calibration frame: a k-NN density ratio of synthetic vs reference data,
  which discounts frames that are simply typical of the population;
- *discriminator*: the GAN discriminator's mean score, when the caller has one.

Pure: arrays in, a JSON-ready dict out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from lusynth.metrics.distances import nearest_neighbor_distances
from lusynth.metrics.privacy import near_copy_threshold
from lusynth.privacy.gate import Check, decide
from lusynth.privacy.params import AuditParams
from lusynth.privacy.stats import (
    auc_inference,
    clopper_pearson,
    permutation_share_pvalue,
    required_frames_for_rate,
    required_patients_for_auc,
    tpr_at_fpr,
)

__all__ = ["ALL_CLASSES", "ROLES", "patient_means", "run_audit"]

ROLES = ("member", "calibration", "nonmember")
ALL_CLASSES = "*"  # the class of an unlabelled synthetic set: compared with every real frame
_EPS = 1e-8


def _nn(q: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d, i = nearest_neighbor_distances(np.ascontiguousarray(q, np.float32), np.ascontiguousarray(ref, np.float32), k=1)
    return d[:, 0].astype(np.float64), i[:, 0]


def per_patient_min(q: np.ndarray, ref: np.ndarray, ref_patients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(patients, distances (n_q, n_patients)): each query's distance to each reference patient's closest frame."""
    uniq = np.unique(ref_patients)
    out = np.empty((len(q), len(uniq)))
    for j, pid in enumerate(uniq):
        out[:, j] = _nn(q, ref[ref_patients == pid])[0]
    return uniq, out


def copy_ratio(per_patient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(DCR, patient-aware distance ratio) from per-patient minima: the ratio is the distance to
    the closest training frame over the distance to the closest frame of *another* training
    patient. A copy of a patient's frame has a ratio near 0; a frame of a new patient, however
    typical or atypical that patient is, near 1 (both distances are between-patient distances),
    which makes the cut-off stable with few calibration patients (absolute distances are not)."""
    if per_patient.shape[1] < 2:
        raise ValueError("audit: the near-copy ratio needs at least 2 training patients per class")
    two = np.partition(per_patient, 1, axis=1)[:, :2]
    return two[:, 0], two[:, 0] / np.maximum(two[:, 1], _EPS)


def patient_means(values: np.ndarray, patients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(patients, mean value per patient), patients sorted."""
    uniq, inv = np.unique(np.asarray(patients), return_inverse=True)
    sums = np.bincount(inv, weights=np.asarray(values, np.float64), minlength=len(uniq))
    return uniq, sums / np.bincount(inv, minlength=len(uniq))


def run_audit(
    real: Mapping[str, np.ndarray],
    patients: np.ndarray,
    labels: np.ndarray,
    roles: np.ndarray,
    synthetic: Mapping[str, np.ndarray],
    synthetic_labels: np.ndarray | None = None,
    *,
    params: AuditParams | None = None,
    discriminator: np.ndarray | None = None,
    mia_space: str = "pixels",
) -> dict[str, Any]:
    """Audit one generator's unfiltered output; returns figures, per-check bounds and the decision.

    ``real``/``synthetic``: feature space name -> features (n, d), the same spaces in both; the
    near-copy test uses every space, the membership attacks ``mia_space`` (pixels by default: an
    embedding trained on the members could itself separate members from non-members).
    ``patients``, ``labels``, ``roles`` (:data:`ROLES`) describe each real row;
    ``synthetic_labels`` the class of each synthetic frame (None: unlabelled, compared with every
    real frame). ``discriminator``: a score per real row (higher = "real/member"), or None.
    """
    p = params or AuditParams()
    spaces = list(real)
    if not spaces or set(spaces) != set(synthetic):
        raise ValueError(f"audit: real and synthetic features must cover the same spaces, got {sorted(real)} and {sorted(synthetic)}")
    if mia_space not in real:
        raise ValueError(f"audit: membership space {mia_space!r} not among the feature spaces {spaces}")
    patients, roles = np.asarray(patients).astype(str), np.asarray(roles).astype(str)
    n_syn = len(next(iter(synthetic.values())))
    if n_syn < 1:
        raise ValueError("audit: the synthetic set is empty")
    bad = sorted(set(roles) - set(ROLES))
    if bad:
        raise ValueError(f"audit: unknown role(s) {bad}; roles are {ROLES}")
    unlabelled = synthetic_labels is None
    real_cls = np.full(len(patients), ALL_CLASSES) if unlabelled else np.asarray(labels).astype(str)
    syn_cls = np.full(n_syn, ALL_CLASSES) if unlabelled else np.asarray(synthetic_labels).astype(str)
    classes = sorted(set(syn_cls))
    rng = np.random.default_rng(p.seed)

    copy = np.zeros(n_syn, bool)
    copy_by_space = {s: np.zeros(n_syn, bool) for s in spaces}
    dcr_syn = {s: np.full(n_syn, np.nan) for s in spaces}
    ratio_syn = {s: np.full(n_syn, np.nan) for s in spaces}
    calib_dcr: dict[str, list[float]] = {s: [] for s in spaces}
    calib_ratio: dict[str, list[float]] = {s: [] for s in spaces}
    nearest_counts: list[tuple[str, str, bool, int]] = []  # (class, patient, member, count) of the closer test
    member_scores: dict[str, np.ndarray] = {"distance": np.full(len(patients), np.nan), "reference": np.full(len(patients), np.nan)}
    for c in classes:
        in_c = real_cls == c
        s_idx = np.flatnonzero(syn_cls == c)
        mem, cal, non = (np.flatnonzero(in_c & (roles == r)) for r in ROLES)
        for name, idx in (("member", mem), ("calibration", cal), ("nonmember", non)):
            if len(idx) == 0:
                raise ValueError(f"audit: class {c!r} has no {name} frames; every class of the synthetic set needs training, "
                                 "calibration (val) and unseen (holdout) patients in the frame store")
        for s in spaces:
            d_cal, r_cal = copy_ratio(per_patient_min(real[s][cal], real[s][mem], patients[mem])[1])
            d_syn, r_syn = copy_ratio(per_patient_min(synthetic[s][s_idx], real[s][mem], patients[mem])[1])
            dcr_syn[s][s_idx], ratio_syn[s][s_idx] = d_syn, r_syn
            calib_dcr[s] += d_cal.tolist()
            calib_ratio[s] += r_cal.tolist()
        # closer test: as many training patients as unseen (calibration + holdout) ones, drawn at random
        mem_p, non_p = np.unique(patients[mem]), np.unique(patients[np.concatenate([cal, non])])
        k = min(len(mem_p), len(non_p))
        chosen = np.concatenate([rng.choice(mem_p, k, replace=False), rng.choice(non_p, k, replace=False)])
        pool = np.flatnonzero(in_c & np.isin(patients, chosen))
        _, j = _nn(synthetic[mia_space][s_idx], real[mia_space][pool])
        near_p = patients[pool][j]
        for pid in chosen:
            nearest_counts.append((c, str(pid), bool(pid in mem_p), int(np.sum(near_p == pid))))
        # membership scores of members and non-members (calibration frames are the reference)
        scored = np.concatenate([mem, non])
        d_s, _ = _nn(real[mia_space][scored], synthetic[mia_space][s_idx])
        d_r, _ = _nn(real[mia_space][scored], real[mia_space][cal])
        d_s_cal, _ = _nn(real[mia_space][cal], synthetic[mia_space][s_idx])
        scale = float(np.median(d_s_cal)) + _EPS
        member_scores["distance"][scored] = -np.log((d_s + _EPS) / scale)
        member_scores["reference"][scored] = np.log(d_r + _EPS) - np.log(d_s + _EPS)
    # the ratio is scale-free, so one cut-off per space from every class's calibration patients
    thresholds = {s: p.copy_margin * near_copy_threshold(np.asarray(calib_ratio[s]), percentile=p.percentile) for s in spaces}
    for s in spaces:
        copy_by_space[s] = ratio_syn[s] < thresholds[s]
        copy |= copy_by_space[s]

    # patient-level membership inference
    scored_rows = np.flatnonzero(np.isin(roles, ("member", "nonmember")) & np.isin(real_cls, classes))
    attacks = dict(member_scores)
    if discriminator is not None:
        attacks["discriminator"] = np.asarray(discriminator, np.float64)
    n_checks = 1 + len(attacks)
    level_fail = 1 - (1 - p.ci) / n_checks
    mia: dict[str, Any] = {}
    for name, frame_scores in attacks.items():
        rows = scored_rows[np.isfinite(frame_scores[scored_rows])]
        pids, score = patient_means(frame_scores[rows], patients[rows])
        is_mem = np.isin(pids, np.unique(patients[roles == "member"]))
        res = auc_inference(score[is_mem], score[~is_mem], ci=p.ci, n_permutations=p.n_permutations,
                            n_bootstrap=p.n_bootstrap, seed=p.seed, fail_ci=level_fail)
        res["patient_scores"] = {"member": score[is_mem].tolist(), "nonmember": score[~is_mem].tolist()}
        res["tpr_at_fpr"] = {f"{f:g}": tpr_at_fpr(score[is_mem], score[~is_mem], f, ci=p.ci) for f in (0.01, 0.1)}
        mia[name] = res

    # the gate: the copy rate and each attack's AUC
    k_copy = int(copy.sum())
    lo, hi = clopper_pearson(k_copy, n_syn, ci=p.ci)
    lo_adj, _ = clopper_pearson(k_copy, n_syn, ci=level_fail)
    expected = p.percentile / 100
    checks = [Check("copy_rate", k_copy / n_syn, p.max_copy_rate, lo, hi, lo_adj, "synthetic frames", n_syn,
                    required_frames_for_rate(expected, p.max_copy_rate, ci=p.ci))]
    for name, res in mia.items():
        n_pat = res["n_members"] + res["n_nonmembers"]
        checks.append(Check(f"{name}_mia_auc", res["auc"], p.max_mia_auc, res["lo"], res["hi"], res["lo_fail"], "patients", n_pat,
                            required_patients_for_auc(p.max_mia_auc, ci=p.ci, member_share=res["n_members"] / n_pat),
                            p_value=res["p_value"], fail_alpha=(1 - level_fail) / 2))
    gate = decide(checks)

    counts = np.array([n for *_, n in nearest_counts], float)
    is_mem_col = np.array([m for _, _, m, _ in nearest_counts], bool)
    k_closer = int(counts[is_mem_col].sum())
    c_lo, c_hi = clopper_pearson(k_closer, n_syn, ci=p.ci)
    closer = {
        "share": k_closer / n_syn, "lo": c_lo, "hi": c_hi, "n_frames": n_syn,
        "binomial_p_value": float(stats.binomtest(k_closer, n_syn, 0.5, alternative="greater").pvalue),
        "patient_permutation_p_value": permutation_share_pvalue(counts, is_mem_col, [c for c, *_ in nearest_counts],
                                                                n_permutations=p.n_permutations, seed=p.seed),
        "patients_per_side": {c: sum(1 for cc, _, m, _ in nearest_counts if cc == c and m) for c in classes},
        "space": mia_space,
    }
    return {
        "decision": gate["decision"],
        "reasons": gate["reasons"],
        "checks": gate["checks"],
        "memorisation": {
            "copy_rate": k_copy / n_syn, "copies": k_copy, "n_synthetic": n_syn, "lo": lo, "hi": hi,
            "at_most_without_memorisation": expected,
            "by_space": {s: float(copy_by_space[s].mean()) for s in spaces},
            "threshold": thresholds,
            "median_dcr_synthetic": {s: float(np.median(dcr_syn[s])) for s in spaces},
            "median_dcr_calibration": {s: float(np.median(calib_dcr[s])) for s in spaces},
            "closer_to_training": closer,
        },
        "membership": mia,
        "n": {
            "synthetic": n_syn,
            "patients": {r: int(len(np.unique(patients[(roles == r) & np.isin(real_cls, classes)]))) for r in ROLES},
            "frames": {r: int(np.sum((roles == r) & np.isin(real_cls, classes))) for r in ROLES},
        },
        "classes": classes,
        "spaces": spaces,
        "mia_space": mia_space,
        "ci": p.ci,
        "fail_level": level_fail,
        "limits": {"max_copy_rate": p.max_copy_rate, "max_mia_auc": p.max_mia_auc},
        "ratios": {s: {"synthetic": ratio_syn[s], "calibration": np.asarray(calib_ratio[s]), "threshold": thresholds[s]}
                   for s in spaces},
        "copy_mask": copy,
    }

