"""``lusynth audit``: a real frame store + any synthetic set -> a privacy report and a decision.

The synthetic set is a lusynth synthetic set (``lusynth generate``: the audit reads the
generator's *unfiltered* output, :meth:`~lusynth.gan.synthetic.SyntheticSet.unfiltered`, and
reports what the near-copy filter removed) or a folder of PNG/JPEG images as another generator
writes them (decoded to grey and resized to the store's size with PIL; a first-level sub-folder
named after a class of the store labels its images, otherwise the set is unlabelled and compared
with every real frame). ``trained_on`` says which patients of the store trained the generator
(:func:`parse_trained_on`). The output directory holds ``audit.json`` (the decision and every
figure behind it), ``audit.md`` and figures; :class:`Audit` is its typed view.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lusynth.errors import InputError, LusynthError
from lusynth.privacy.params import AuditParams

__all__ = ["AUDIT_FILE", "Audit", "SyntheticSource", "TrainedOn", "audit", "parse_trained_on", "read_image_folder"]

AUDIT_FILE = "audit.json"
REPORT_FILE = "audit.md"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class TrainedOn:
    """Which patients of the store trained the generator: the inner training patients of one outer
    split (``fold``), optionally only a nested fraction of them."""

    split: str = "train"
    fraction: float | None = None  # None: the synthetic set's own GAN fraction per class, else all of the fold's training patients
    fold: int | None = None  # None: the synthetic set's own GANs' fold (an image folder: fold 0 of a single-split store)

    def __str__(self) -> str:
        return (self.split if self.fold is None else f"fold:{self.fold}") + (f"@{self.fraction:g}" if self.fraction is not None else "")


def parse_trained_on(text: str) -> TrainedOn:
    """``train`` | ``train@F`` (the nested training fraction F; the fold is the synthetic set's
    own) | ``fold:K`` | ``fold:K@F`` (outer split K's inner training patients, at F). One clear
    line for anything else."""
    t = (text or "").strip()
    who, _, frac = t.partition("@")
    fold: int | None = None
    if who.startswith("fold:"):
        try:
            fold = int(who[len("fold:"):])
        except ValueError:
            fold = -1
        if fold < 0:
            raise InputError(f"--trained-on {t!r}: K in fold:K must be an outer split index >= 0, e.g. fold:0 or fold:1@0.5")
    elif who != "train":
        raise InputError(f"--trained-on {t!r}: name who trained the generator: train, train@F (a nested fraction F), "
                         "fold:K or fold:K@F (outer split K's training patients)")
    if not frac:
        return TrainedOn("train", None, fold)
    try:
        f = float(frac)
    except ValueError:
        raise InputError(f"--trained-on {t!r}: F after @ must be a fraction in (0, 1], e.g. train@0.5") from None
    if not 0 < f <= 1:
        raise InputError(f"--trained-on {t!r}: F after @ must be a fraction in (0, 1], e.g. train@0.5")
    return TrainedOn("train", f, fold)


def read_image_folder(path: str | os.PathLike[str], size: int, classes: list[str]) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(uint8 frames (N, size, size), class per frame or None, relative file names) of every
    PNG/JPEG below ``path``; grey-scale, resized with PIL's bilinear filter."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{root}: no PNG or JPEG images found (nor a synthetic set from `lusynth generate`)")
    frames, names, labels = [], [], []
    for f in files:
        try:
            with Image.open(f) as im:
                frames.append(np.asarray(im.convert("L").resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8))
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"{f}: not a readable image ({exc}); remove it or re-export it") from None
        rel = f.relative_to(root)
        names.append(rel.as_posix())
        labels.append(rel.parts[0] if len(rel.parts) > 1 else None)
    labelled = all(lbl in classes for lbl in labels)
    return np.stack(frames), (np.array(labels) if labelled else None), names


@dataclass
class SyntheticSource:
    """What ``--synthetic`` accepts: a lusynth synthetic set or a folder of images."""

    WHAT: ClassVar[str] = "a synthetic set (the output of `lusynth generate`) or a folder of PNG/JPEG images"

    path: Path
    kind: str  # "synthetic_set" | "images"

    @classmethod
    def load(cls, dir: str | os.PathLike[str]) -> SyntheticSource:
        """Recognise ``dir``; :class:`InputError` when it is neither."""
        from lusynth.gan.synthetic import SyntheticSet

        path = Path(dir)
        try:
            SyntheticSet.load(path)
            return cls(path, "synthetic_set")
        except LusynthError:
            pass
        if path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file()):
            return cls(path, "images")
        raise InputError(f"{path}: not {cls.WHAT}")


@dataclass
class Audit:
    """The output of :func:`audit`: ``audit.json`` (``report``), ``audit.md`` and figures."""

    WHAT: ClassVar[str] = "a privacy audit (the output of `lusynth audit`)"

    path: Path
    report: dict[str, Any]

    @classmethod
    def load(cls, dir: str | os.PathLike[str]) -> Audit:
        """Open an audit directory; :class:`InputError` if it is not one."""
        from lusynth.util import read_json

        path = Path(dir)
        report = read_json(path / AUDIT_FILE, what=cls.WHAT, hint="run `lusynth audit`")
        if not isinstance(report, dict) or "decision" not in report:
            raise InputError(f"{path / AUDIT_FILE}: not {cls.WHAT}; run `lusynth audit` again")
        return cls(path, report)

    @property
    def decision(self) -> str:
        """pass | fail | insufficient_evidence."""
        return str(self.report["decision"])

    @property
    def synthetic_digest(self) -> str | None:
        """Content digest of the audited synthetic set (None for an image folder)."""
        return self.report["synthetic"].get("digest")

    @property
    def passed(self) -> bool:
        return self.decision == "pass"

    def summary(self) -> str:
        """The decision, its reasons and where the report is."""
        lines = [f"privacy audit of {self.report['synthetic']['path']}: {self.decision.upper()}"]
        lines += [f"  {r}" for r in self.report.get("reasons", [])]
        return "\n".join([*lines, f"report: {self.path / REPORT_FILE}"])

    def figures(self) -> dict[str, bytes]:
        """The audit's figures, PNG bytes by name (``near_copy_ratios``, ``membership_scores``)."""
        return {p.stem: p.read_bytes() for p in sorted(self.path.glob("*.png"))}

    def patient_summary(self) -> dict[str, Any]:
        """What a report shows of the audit: decision, copy rate, the closer test and each
        patient-level membership attack with its interval, p-value and TPR at low FPR."""
        r = self.report
        mem = r["memorisation"]
        return {
            "decision": self.decision, "reasons": list(r.get("reasons", [])), "trained_on": r.get("trained_on"),
            "n": r.get("n", {}), "copy_rate": {k: mem.get(k) for k in ("copy_rate", "lo", "hi")},
            "closer_to_training": mem.get("closer_to_training"),
            "membership": {name: {"auc": m["auc"], "lo": m["lo"], "hi": m["hi"], "p_value": m["p_value"],
                                  "tpr_at_fpr": {k: {"tpr": v["tpr"], "lo": v["lo"], "hi": v["hi"]} for k, v in m.get("tpr_at_fpr", {}).items()}}
                           for name, m in r["membership"].items()},
        }

    def kfp_metrics(self) -> dict[str, float]:
        """Headline figures for the KFP UI."""
        out = {"copy_rate": float(self.report["memorisation"]["copy_rate"])}
        out |= {f"{k}_mia_auc": float(v["auc"]) for k, v in self.report["membership"].items()}
        return out

    def kfp_metadata(self) -> dict[str, Any]:
        """What the KFP artefact's metadata shows."""
        return {"decision": self.decision, "synthetic": self.report["synthetic"]["path"]}


def plain(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python numbers and lists (JSON-ready)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _roles(store: Any, trained_on: TrainedOn, class_fraction: dict[str, float], fold: int) -> np.ndarray:
    """member / calibration / nonmember / unused per row of the store, inside outer split ``fold``:
    its inner training patients (at the fraction) are members, its inner validation patients
    calibrate, its test patients are the non-members."""
    roles = np.full(len(store.manifest), "unused", dtype=object)
    roles[store.view(fold, "val")] = "calibration"
    roles[store.view(fold, "test")] = "nonmember"
    for label in store.classes:
        f = trained_on.fraction if trained_on.fraction is not None else class_fraction.get(label, 1.0)
        roles[store.view(fold, "train", label=label, fraction=f)] = "member"
    return roles.astype(str)


def _audit_fold(store: Any, who: TrainedOn, set_folds: set[int] | None, synthetic: Path) -> int:
    """The outer split whose patients the audit uses: the synthetic set's GANs' (which must agree
    with ``fold:K`` when given), else ``fold:K``; an image folder on a K-fold store must name it."""
    if set_folds is not None:
        if len(set_folds) != 1:
            raise InputError(f"{synthetic}: made by GANs of several outer folds {sorted(set_folds)}; audit one fold's set at a time")
        (fold,) = set_folds
        if who.fold is not None and who.fold != fold:
            raise InputError(f"--trained-on {who}: {synthetic} was made by GANs of fold {fold}; use fold:{fold} (or train)")
        return fold
    if who.fold is not None:
        return who.fold
    if store.n_splits > 1:
        raise InputError(f"--trained-on {who}: {store.path} holds {store.n_splits} outer folds; name the one whose training "
                         "patients trained the generator, e.g. --trained-on fold:0")
    return 0


def _discriminator_scores(gan_dirs: Sequence[str | os.PathLike[str]], store: Any, rows: np.ndarray,
                          labels: np.ndarray, fold: int = 0) -> tuple[np.ndarray | None, dict[str, str]]:
    """D's score of each audited real row, by the GAN of the row's class (NaN where no GAN of that
    class was given); None when no GAN was given. Also {label: GAN directory} of what was used."""
    if not gan_dirs:
        return None, {}
    from lusynth.gan.checkpoint import discriminator_scorer
    from lusynth.gan.run import GanRun

    scores = np.full(len(rows), np.nan)
    used: dict[str, str] = {}
    for d in gan_dirs:
        run = GanRun.load(d)
        if run.frames_digest and run.frames_digest != store.digest:
            raise InputError(f"{d}: this GAN was trained on frames {run.frames_digest}, but --frames is {store.digest}; "
                             "pass the GANs of this frame store")
        if run.key.fold != fold:
            raise InputError(f"{d}: this GAN learned fold {run.key.fold}'s training patients, but the audit is of fold {fold}; "
                             "pass the GANs that made --synthetic")
        mine = labels == run.key.label
        if mine.any():
            scores[mine] = discriminator_scorer(run.path)(np.asarray(store.frames[rows[mine]]))
            used[run.key.label] = str(run.path)
    return scores, used


def audit(
    frames_dir: str | os.PathLike[str],
    synthetic_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    trained_on: str | TrainedOn = "train",
    params: AuditParams | None = None,
    gan_dirs: Sequence[str | os.PathLike[str]] = (),
) -> Audit:
    """Audit the synthetic set (or image folder) ``synthetic_dir`` against the real store ``frames_dir``.

    ``gan_dirs``: the GANs that made it (lusynth's own generators); each class's discriminator then
    also attacks membership (its score of the real frames of its class). Other generators have no
    discriminator to attack with: those checks are absent, not passed."""
    from lusynth.atomic import atomic_dir, dumps_json
    from lusynth.data.framestore import open_store
    from lusynth.gan.synthetic import SyntheticSet
    from lusynth.privacy.core import run_audit
    from lusynth.privacy.features import feature_spaces
    from lusynth.privacy.render import figures, markdown
    from lusynth.util import run_directory

    p = params or AuditParams()
    who = parse_trained_on(trained_on) if isinstance(trained_on, str) else trained_on
    store = open_store(frames_dir)
    source = SyntheticSource.load(synthetic_dir)
    filt: dict[str, Any] = {}
    syn_digest: str | None = None
    class_fraction: dict[str, float] = {}
    set_folds: set[int] | None = None
    if source.kind == "synthetic_set":
        syn_set = SyntheticSet.load(source.path)
        if syn_set.store.image_size != store.image_size:
            raise InputError(f"{source.path}: frames are {syn_set.store.image_size} px, the store's {store.image_size} px; pass the store the generator was trained on")
        frames, syn_labels_s, dropped = syn_set.unfiltered()
        syn_digest = syn_set.store.digest
        syn_labels: np.ndarray | None = np.asarray(syn_labels_s).astype(str)
        class_fraction = {k.label: k.fraction for k in syn_set.keys}
        set_folds = {k.fold for k in syn_set.keys}
        filt = {label: {k: v for k, v in info.items() if k in ("generated", "kept", "dropped_near_copies", "threshold", "first_round")}
                for label, info in syn_set.per_class.items()}
        if syn_set.source_frames_digest and syn_set.source_frames_digest != store.digest:
            raise InputError(f"{source.path} was generated from frames {syn_set.source_frames_digest}, but {store.path} is {store.digest}; pass the same --frames")
    else:
        frames, syn_labels, _ = read_image_folder(source.path, store.image_size, store.classes)
        dropped = np.zeros(len(frames), bool)
    # at most max_synthetic_frames per class, a random subset
    rng = np.random.default_rng(p.seed)
    groups = syn_labels if syn_labels is not None else np.zeros(len(frames), str)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(groups == g))[: p.max_synthetic_frames] for g in np.unique(groups)]))
    frames, dropped = frames[keep], dropped[keep]
    syn_labels = syn_labels[keep] if syn_labels is not None else None
    fold = _audit_fold(store, who, set_folds, source.path)
    try:
        roles = _roles(store, who, class_fraction, fold)
    except LusynthError as exc:
        raise InputError(f"--trained-on {who}: {exc}") from None
    rows = np.flatnonzero(roles != "unused")
    real = np.asarray(store.frames[rows])
    labels = store.manifest["label"].to_numpy()[rows].astype(str)
    label_int = np.array([store.classes.index(lbl) for lbl in labels])
    disc, disc_used = _discriminator_scores(gan_dirs, store, rows, labels, fold)
    try:
        real_f, syn_f = feature_spaces(p.features, real, frames, member=roles[rows] == "member", labels=label_int,
                                       epochs=p.embedding_epochs, seed=p.seed)
        res = run_audit(real_f, store.manifest["patient_id"].to_numpy()[rows], labels, roles[rows], syn_f, syn_labels, params=p,
                        discriminator=disc)
    except ValueError as exc:
        raise InputError(f"{store.path}: {exc}") from None
    copy = res.pop("copy_mask")
    ratios = res.pop("ratios")
    report = {
        **res,
        "synthetic": {"path": str(source.path), "kind": source.kind, "labelled": syn_labels is not None, "digest": syn_digest,
                      "frames_audited": int(len(frames))},
        "frames": {"path": str(store.path), "digest": store.digest},
        "trained_on": str(who),
        "fold": fold,
        "discriminator_attack": disc_used or "not run: no GAN directory given (a generator other than lusynth's has none)",
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(p).items()},
        "filter": {
            "per_class": filt,
            "removed_by_filter": int(dropped.sum()),
            "copies_in_unfiltered": int(copy.sum()),
            "copies_the_filter_removed": int((copy & dropped).sum()),
            "copies_the_filter_kept": int((copy & ~dropped).sum()),
        },
    }
    with atomic_dir(out_dir) as tmp:
        for name, png in figures(report, ratios).items():
            (tmp / name).write_bytes(png)
        (tmp / AUDIT_FILE).write_text(dumps_json(plain(report)))
        (tmp / REPORT_FILE).write_text(markdown(report, base=run_directory(out_dir, store.path)))
    return Audit.load(out_dir)
