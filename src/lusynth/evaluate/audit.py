"""Fidelity and privacy audit of one GAN's synthetic frames (the paper has no privacy audit).

Real references, per class ``c`` and GAN training fraction ``f``:

- *holdout*: real holdout frames of class ``c`` -- fidelity reference and membership non-members;
- *train*: the real training frames of class ``c`` at fraction ``f`` -- what the GAN was trained
  on, so the membership-inference members and the DCR reference.

Fidelity (synthetic vs holdout): kernel MMD^2 (RBF, median heuristic) and leave-one-out 1-NN
accuracy in pixels and in the embedding of the ``real`` classifier; the Fréchet distance and KID
formulas in that embedding (**not comparable with Inception FID/KID**: no ImageNet weights can be
downloaded here, and the embedding is the project's own classifier); the paper's confidence score
= mean probability of the GAN's class given by the ``real`` classifier.

Privacy (pixels in [0, 1]): distance to the closest training record (DCR) of synthetic frames and
of holdout frames, the memorisation rate (share of synthetic frames that are near-copies by
:class:`~lusynth.metrics.nearcopy.NearCopyPolicy`, the rule the GAN stages apply too), a
distance-based membership-inference attack and the discriminator's score as an attack (train
frames vs holdout frames, balanced), each as ROC AUC (0.5 = no leakage). The release gate is
:class:`lusynth.metrics.privacy.PrivacyGate`.

Pure: arrays and callables in, numbers out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lusynth.evaluate.params import EvaluateParams
from lusynth.metrics.distances import subsample
from lusynth.metrics.fidelity import frechet_distance, kernel_inception_distance, mmd2_rbf, one_nn_accuracy_parts, sharpness
from lusynth.metrics.nearcopy import NearCopyPolicy
from lusynth.metrics.nearcopy import pixels as pixel_features
from lusynth.metrics.privacy import distance_attack_scores, membership_inference_auc

#: frames (N, S, S) uint8 -> one score per frame (higher = "more real" / "more likely a member")
ScoreFn = Callable[[np.ndarray], np.ndarray]
#: frames (N, S, S) uint8 -> features (N, d)
EmbedFn = Callable[[np.ndarray], np.ndarray]


def audit_synthetic(
    synthetic: np.ndarray,
    holdout: np.ndarray,
    train: np.ndarray,
    *,
    params: EvaluateParams,
    near_copy: NearCopyPolicy | None = None,
    embed: EmbedFn | None = None,
    class_prob: EmbedFn | None = None,
    discriminator: ScoreFn | None = None,
    holdout_groups: np.ndarray | None = None,
    train_patients: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fidelity + privacy of ``synthetic`` frames of one class (all inputs uint8 (N, S, S)).

    ``embed`` gives classifier features (embedding metrics are skipped without it); ``class_prob``
    the ``real`` classifier's probability of the GAN's class per frame (confidence score);
    ``discriminator`` the GAN's D score per frame (discriminator attack); ``holdout_groups`` the clip
    of each holdout frame, so the 1-NN test leaves a whole real clip out; ``near_copy`` the
    near-copy rule of the memorisation rate (default ``NearCopyPolicy()``); ``train_patients`` the
    patient of each training frame (the pooled near-copy reference leaves each out in turn).
    Returns ``{"fidelity": {...}, "privacy": {...}, "dcr": {...arrays...}, "n": {...}}``.
    """
    for name, a in (("synthetic", synthetic), ("holdout", holdout), ("train", train)):
        if len(a) < 2:
            raise ValueError(f"audit: need at least 2 {name} frames of the class, got {len(a)}")
    k = params.audit_max_frames
    syn = synthetic[subsample(len(synthetic), k, seed=params.seed)]
    hold_idx = subsample(len(holdout), k, seed=params.seed + 1)
    hold = holdout[hold_idx]
    tr_idx = subsample(len(train), k, seed=params.seed + 2)
    tr = train[tr_idx]
    # 1-NN accuracy is calibrated at 0.5 only for equal sample sizes: compare equal-size subsets
    n_eq = min(len(syn), len(hold))
    syn_eq = syn[subsample(len(syn), n_eq, seed=params.seed + 3)]
    eq_idx = subsample(len(hold), n_eq, seed=params.seed + 4)
    hold_eq = hold[eq_idx]
    groups = np.asarray(holdout_groups)[hold_idx][eq_idx] if holdout_groups is not None else None
    groups = groups if groups is not None and len(set(groups)) > 1 else None
    px_syn, px_hold = pixel_features(syn), pixel_features(hold)
    nn_px = one_nn_accuracy_parts(pixel_features(hold_eq), pixel_features(syn_eq), real_groups=groups)
    fid: dict[str, float] = {
        "mmd_pixels": float(mmd2_rbf(px_hold, px_syn)),
        "nn1_pixels": nn_px["accuracy"],
        "nn1_pixels_real": nn_px["real_accuracy"],
        "nn1_pixels_fake": nn_px["fake_accuracy"],
        # fine detail (mean |Laplacian|, grey levels) of the synthetic and the real test frames: on few
        # patients the distribution measures can favour a generator that blurs them together
        "sharpness": sharpness(syn),
        "sharpness_holdout": sharpness(hold),
    }
    if embed is not None:
        e_syn, e_hold = embed(syn), embed(hold)
        nn_e = one_nn_accuracy_parts(embed(hold_eq), embed(syn_eq), real_groups=groups)
        kid_mean, kid_std = kernel_inception_distance(e_hold, e_syn, subsets=params.kid_subsets,
                                                      subset_size=params.kid_subset_size, seed=params.seed)
        fid.update({
            "mmd_embed": float(mmd2_rbf(e_hold, e_syn)),
            "nn1_embed": nn_e["accuracy"],
            "nn1_embed_real": nn_e["real_accuracy"],
            "nn1_embed_fake": nn_e["fake_accuracy"],
            "fid_embed": float(frechet_distance(e_hold, e_syn)),
            "kid_embed": kid_mean,
            "kid_embed_std": kid_std,
        })
    if class_prob is not None:
        fid["confidence"] = float(np.mean(class_prob(syn)))  # the paper's confidence score
        fid["confidence_holdout"] = float(np.mean(class_prob(hold)))  # what real frames of the class get

    near_copies = (near_copy or NearCopyPolicy()).fit(tr, hold, None if train_patients is None else np.asarray(train_patients)[tr_idx])
    # the reference DCRs begin with the holdout frames' own (NearCopyPolicy.reference_dcr): not computed twice
    dcr_syn, dcr_hold = near_copies.dcr(syn), near_copies.reference_dcr[: len(hold)]
    # balanced attack: as many members (train) as non-members (holdout)
    n_att = min(len(tr), len(hold))
    members = tr[subsample(len(tr), n_att, seed=params.seed + 5)]
    nonmembers = hold[subsample(len(hold), n_att, seed=params.seed + 6)]
    priv: dict[str, float] = {
        "memorisation_rate": near_copies.policy.rate(dcr_syn, near_copies.reference_dcr),
        "near_copy_threshold": near_copies.threshold,
        "median_dcr_synthetic": float(np.median(dcr_syn)),
        "median_dcr_holdout": float(np.median(dcr_hold)),
        "distance_mia_auc": membership_inference_auc(
            distance_attack_scores(pixel_features(members), px_syn),
            distance_attack_scores(pixel_features(nonmembers), px_syn)),
    }
    if discriminator is not None:
        priv["discriminator_mia_auc"] = membership_inference_auc(
            np.asarray(discriminator(members), dtype=np.float64), np.asarray(discriminator(nonmembers), dtype=np.float64))
    return {
        "fidelity": fid,
        "privacy": priv,
        "dcr": {"synthetic": dcr_syn, "holdout": dcr_hold},
        "n": {"synthetic": len(syn), "holdout": len(hold), "train": len(tr), "attack_per_side": n_att},
    }


def gate_audit(privacy: dict[str, float], params: EvaluateParams) -> dict[str, Any]:
    """Apply the release gate; a missing discriminator score only fails when its check is enabled
    *and* a GAN directory was given (a synthetic store alone has no discriminator to attack with)."""
    gate = params.gate()
    if "discriminator_mia_auc" not in privacy and gate.max_discriminator_mia_auc is not None:
        from dataclasses import replace

        gate = replace(gate, max_discriminator_mia_auc=None)
        skipped = ["discriminator_mia_auc not computed (no GAN directory given): check skipped"]
    else:
        skipped = []
    passed, reasons = gate.check(privacy)
    return {"passed": bool(passed), "reasons": reasons, "notes": skipped}
