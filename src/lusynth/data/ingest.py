"""The ingest stage: what a user has (images, clips, DICOM; a folder, a CSV, an s3:// prefix, or
nothing: the built-in phantom) -> a frame store with patient-level splits, plus a report.

Every input is accounted for: accepted frames are counted per class and split, every rejected file
(and every dropped duplicate frame) is listed with its reason. The frame store holds no original
file name, no DICOM header value and no raw patient id: patients and clips are pseudonymised with
a keyed hash. The report, which names files, is written *beside* the store, for the operator.

Finding the inputs is :mod:`lusynth.data.sources`; the report artefact is :mod:`lusynth.data.ingest_report`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lusynth import __version__
from lusynth.data.framestore import FOLD_COLUMN, FrameStoreWriter, frame_hash
from lusynth.data.ingest_report import IngestReport, summarise, write_report
from lusynth.data.keys import load_key
from lusynth.data.pseudonym import pseudonymise
from lusynth.data.readers import SAMPLING_MODES, VideoSampling
from lusynth.data.sources import SourceItem, items_from_csv, items_from_folders, resolve_source
from lusynth.data.splits import SPLIT_NAMES, CrossValidation, assign_folds, fold_roles, nested_fractions, repeat_seed, split_patients
from lusynth.errors import InputError, RejectedInput
from lusynth.params import check, check_choices
from lusynth.tempspace import temp_dir

# IngestReport and summarise are re-exported for callers that imported them from here
__all__ = ["IngestParams", "IngestReport", "IngestResult", "ingest", "summarise"]


@dataclass(frozen=True)
class IngestParams:
    """Ingest parameters (defaults = the demo profile)."""

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"image_size": (32, 64, 128, 256), "square": ("crop", "pad"),
                                                     "video_mode": SAMPLING_MODES}

    image_size: int = 64  # output frames are image_size x image_size uint8 (64 / 128 / 256)
    square: str = "crop"  # how a non-square frame becomes square: centre "crop" or zero "pad"
    min_side: int = 32  # frames whose short side is smaller are rejected as too_small
    # the clip sampling's defaults are the reader's own (lusynth.data.readers.VideoSampling), written once
    video_mode: str = VideoSampling.mode  # clips: "even" = video_frames spread over the clip; "every" = every video_step-th
    video_frames: int = VideoSampling.frames  # "even" mode: frames per clip, spread over it (first and last included)
    video_step: int = VideoSampling.step
    max_frames_per_clip: int = VideoSampling.max_frames
    labels_csv: str | None = None  # CSV of path,label,patient_id[,video_id]; relative to the source folder
    path_column: str = "path"
    label_column: str = "label"
    patient_column: str = "patient_id"
    video_column: str = "video_id"
    positive_class: str | None = None  # required for user data; the phantom's is "consolidation"
    split_fractions: tuple[float, ...] = (0.6, 0.2, 0.2)  # train / val / holdout, by patient
    train_fractions: tuple[float, ...] = (0.5, 1.0)  # nested training fractions, by patient
    seed: int = 0
    workers: int = 0  # decode threads; 0 = the CPU quota
    max_pixels: int = 25_000_000  # a frame declaring more pixels (width x height, read from its header) is rejected as too_many_pixels before it is decoded
    allow_outside_paths: bool = False  # read files a labels CSV names outside its folder (absolute, ../, symlinks); only for a trusted CSV

    def __post_init__(self) -> None:
        check_choices(self, "ingest")
        check(self.min_side >= 1, "ingest", "min_side", self.min_side, "must be >= 1")
        check(self.video_frames >= 1 and self.video_step >= 1 and self.max_frames_per_clip >= 1, "ingest", "video_frames",
              self.video_frames, "video_frames, video_step and max_frames_per_clip must be >= 1")
        check(len(self.split_fractions) == 3 and all(f > 0 for f in self.split_fractions), "ingest", "split_fractions",
              self.split_fractions, "three positive numbers (train, val, holdout), e.g. 0.6,0.2,0.2")
        check(bool(self.train_fractions) and all(0 < f <= 1 for f in self.train_fractions), "ingest", "train_fractions",
              self.train_fractions, "nested training fractions in (0, 1], e.g. 0.5,1.0")
        check(self.max_pixels >= 1, "ingest", "max_pixels", self.max_pixels, "must be >= 1 (pixels per frame)")
        check(self.workers >= 0, "ingest", "workers", self.workers, "must be >= 0 (0 = the CPU quota)")


@dataclass
class IngestResult:
    """What :func:`ingest` returns: the store, the report directory, the store header and the report."""

    store: Path
    report_dir: Path
    header: dict[str, Any]
    report: dict[str, Any] = field(repr=False)


# --------------------------------------------------------------------------------------------
# decoding


def _decode(item: SourceItem, params: IngestParams) -> tuple[list[tuple[int, np.ndarray]], list[tuple[int, str]]]:
    """Decode and prepare one file: (accepted frames, rejected frames as (index, reason))."""
    from lusynth.data.preprocess import prepare_frame
    from lusynth.data.readers import read_frames

    sampling = VideoSampling(
        mode=params.video_mode,
        frames=params.video_frames,
        step=params.video_step,
        max_frames=params.max_frames_per_clip,
    )
    ok: list[tuple[int, np.ndarray]] = []
    bad: list[tuple[int, str]] = []
    for idx, arr in read_frames(item.path, sampling=sampling, max_pixels=params.max_pixels):
        try:
            ok.append((idx, prepare_frame(arr, size=params.image_size, square=params.square, min_side=params.min_side)))
        except RejectedInput as exc:
            bad.append((idx, exc.reason + (f" ({exc.detail})" if exc.detail else "")))
    return ok, bad


def _decoded(items: Sequence[SourceItem], params: IngestParams, workers: int) -> Iterator[tuple[SourceItem, Any]]:
    """Decode in a thread pool, yielding results in input order with a bounded number in flight."""
    window = max(2, 2 * workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: list[tuple[SourceItem, Future[Any]]] = []
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(_decode, item, params)))
            if len(pending) >= window:
                break
        while pending:
            item, fut = pending.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_decode, nxt, params)))
            try:
                yield item, fut.result()
            except RejectedInput as exc:
                yield item, exc


# --------------------------------------------------------------------------------------------
# the stage


def ingest(
    source: str | None,
    out: str | os.PathLike[str],
    *,
    params: IngestParams = IngestParams(),
    report_dir: str | os.PathLike[str] | None = None,
    phantom: Any = None,
    progress: bool = False,
    cv: CrossValidation | None = None,
) -> IngestResult:
    """Run the ingest stage; see the module docstring.

    ``source=None`` ingests the built-in phantom, made with ``phantom`` (a PhantomParams; default
    the demo phantom). ``cv``: the outer protocol (``experiment.folds`` / ``repeats`` /
    ``inner_val_share``); each patient's outer test fold per repeat is stored with the frames, and
    the store's :meth:`~lusynth.data.framestore.FrameStore.view` gives each fold's roles. ``None`` or
    ``folds=1``: the single train/val/holdout split of ``params.split_fractions``.
    """
    cv = cv or CrossValidation()
    from lusynth.runtime import cpu_quota

    out = Path(out)
    report_dir = Path(report_dir) if report_dir else out.with_name(out.name + "-report")
    t0 = time.perf_counter()
    key, key_origin = load_key()
    rejected: list[dict[str, str]] = []
    duplicates: list[dict[str, Any]] = []
    frame_rejects: list[dict[str, Any]] = []
    # scratch space (the phantom's files, an s3:// or dvc:// download) lies beside the output, is
    # removed at exit or by the next run after a kill (lusynth.tempspace); a local source needs none
    needs_scratch = source is None or "://" in source
    with temp_dir(out.parent) if needs_scratch else contextlib.nullcontext(None) as tmp:
        src = resolve_source(source, params, tmp, progress, phantom)
        root, csv_path, described, params = src.root, src.csv, src.described, src.params
        report: dict[str, Any] = {
            "lusynth_version": __version__,
            "source": described,
            "labels": str(csv_path.name) if csv_path else "class sub-folders",
            "params": _params_dict(params),
            "pseudonym_key": key_origin,
        }
        items: list[SourceItem] = []
        listing_rejects: int | None = None
        try:
            # a labels CSV that cannot be read (encoding, syntax, columns) fails with a report too
            items = items_from_csv(csv_path, params, rejected) if csv_path else items_from_folders(
                root, rejected, allow_outside=params.allow_outside_paths)
            listing_rejects = len(rejected)
            if not items:
                raise InputError(
                    f"{described}: no usable input files ({len(rejected)} rejected); see the report in {report_dir}"
                )
            classes = sorted({it.label for it in items})
            positive = params.positive_class
            if positive is None:
                raise InputError(f"{described}: pass --positive-class, one of {classes} (the class a positive prediction means)")
            if positive not in classes:
                raise InputError(f"--positive-class {positive!r} is not among the classes found in {described}: {classes}")
            header, stats = _write_store(items, params, out, key, rejected, duplicates, frame_rejects, classes, positive, progress, src.revision,
                                         cv)
        except InputError as exc:
            report.update(status="failed", error=str(exc), files_seen=len(items) + (len(rejected) if listing_rejects is None else listing_rejects),
                          rejected=rejected,
                          rejected_by_reason=dict(Counter(r["reason"] for r in rejected)), duplicates=duplicates, frame_rejects=frame_rejects)
            write_report(report_dir, report)
            raise
    report.update(
        status="ok",
        seconds=round(time.perf_counter() - t0, 3),
        frames_per_second=round(header["n_frames"] / max(time.perf_counter() - t0, 1e-9), 1),
        files_seen=len(items) + (listing_rejects or 0),
        files_accepted=stats["files_accepted"],
        frames=header["n_frames"],
        classes=header["classes"],
        positive_class=header["positive_class"],
        counts=header["counts"],
        patients=stats["patients"],
        patients_with_two_labels=stats["mixed"],
        content_digest=header["content_digest"],
        rejected=rejected,
        rejected_by_reason=dict(Counter(r["reason"] for r in rejected)),
        duplicates=duplicates,
        frame_rejects=frame_rejects,
        workers=params.workers or cpu_quota(),
        store=str(out),
    )
    write_report(report_dir, report)
    return IngestResult(store=out, report_dir=report_dir, header=header, report=report)


def _params_dict(params: IngestParams) -> dict[str, Any]:
    from lusynth.params import as_dict

    return as_dict(params)


def _write_store(
    items: list[SourceItem],
    params: IngestParams,
    out: Path,
    key: bytes,
    rejected: list[dict[str, str]],
    duplicates: list[dict[str, Any]],
    frame_rejects: list[dict[str, Any]],
    classes: list[str],
    positive: str,
    progress: bool,
    dvc_rev: str | None = None,
    cv: CrossValidation | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    cv = cv or CrossValidation()
    from lusynth.runtime import cpu_quota

    workers = params.workers or cpu_quota()
    seen: dict[str, str] = {}
    patient_labels: dict[str, set[str]] = defaultdict(set)
    files_accepted = 0
    from lusynth.progress import progress as progress_bar

    with progress_bar(len(items), "ingest", enabled=progress, unit="files") as advance, \
            FrameStoreWriter(out, image_size=params.image_size) as writer:
        for item, result in _decoded(items, params, workers):
            advance()
            if isinstance(result, RejectedInput):
                rejected.append({"file": item.display, "reason": result.reason, "detail": result.detail})
                continue
            ok, bad = result
            for idx, reason in bad:
                frame_rejects.append({"file": item.display, "frame_index": idx, "reason": reason})
            if not ok:
                reason = bad[0][1].split(" ")[0] if bad else "no_frames"
                rejected.append({"file": item.display, "reason": reason, "detail": f"no usable frame ({len(bad)} rejected)"})
                continue
            pid = pseudonymise(item.patient, key, prefix="p")
            vid = pseudonymise(item.video, key, prefix="v")
            added = 0
            for idx, frame in ok:
                h = frame_hash(frame)
                if h in seen:
                    duplicates.append({"file": item.display, "frame_index": idx, "duplicate_of": seen[h]})
                    continue
                seen[h] = f"{item.display}#{idx}"
                writer.append(
                    frame,
                    {
                        "frame_id": h[:16],
                        "patient_id": pid,
                        "video_id": vid,
                        "frame_index": idx,
                        "label": item.label,
                        "source": item.kind,
                        "content_hash": h,
                    },
                )
                added += 1
            if added:
                files_accepted += 1
                patient_labels[pid].add(item.label)
            else:
                rejected.append({"file": item.display, "reason": "duplicate", "detail": "every frame duplicates an earlier one"})
        if not len(writer):
            raise InputError(f"every input was rejected ({len(rejected)} files); nothing to ingest — see the report")
        present = {r["label"] for r in writer.rows}
        empty = [c for c in classes if c not in present]
        if empty:
            raise InputError(f"class(es) {empty} have no usable frame after ingest; add data or remove the class")
        if cv.folds >= 2:
            split_of, cv_header = _assign_cv(patient_labels, classes, params, cv)
            for row in writer.rows:
                row["split"] = split_of[row["patient_id"]][0]
                row["train_fraction"] = ""
                row[FOLD_COLUMN] = split_of[row["patient_id"]][1]
            names = [f"fold{k}" for k in range(cv.folds)]
            test_fold = {p: v[0] for p, v in split_of.items()}
        else:
            single = split_patients(patient_labels, fractions=params.split_fractions, seed=params.seed)
            train_patients = {p: labs for p, labs in patient_labels.items() if single[p] == "train"}
            frac_of = nested_fractions(train_patients, fractions=params.train_fractions, seed=params.seed)
            for row in writer.rows:
                row["split"] = single[row["patient_id"]]
                row["train_fraction"] = frac_of.get(row["patient_id"], "") if row["split"] == "train" else ""
            _check_coverage(writer.rows, classes, params)
            cv_header, names, test_fold = {}, list(SPLIT_NAMES), single
        header = writer.finish(
            kind="real",
            classes=classes,
            positive_class=positive,
            extra_header={
                "split_fractions": list(params.split_fractions),
                "train_fractions": sorted(params.train_fractions),
                **({"cv": cv_header} if cv_header else {}),
                "ingest_params": _params_dict(params),
                "lusynth_version": __version__,
                "pseudonymised": True,
                **({"dvc_revision": dvc_rev} if dvc_rev else {}),
            },
        )
    patients = {s: {c: 0 for c in classes} for s in names}
    for pid, labs in patient_labels.items():
        for lab in labs:
            patients[test_fold[pid]][lab] += 1
    mixed = sorted(p for p, labs in patient_labels.items() if len(labs) > 1)
    return header, {"files_accepted": files_accepted, "patients": patients, "mixed": mixed}


def _assign_cv(patient_labels: dict[str, set[str]], classes: list[str], params: IngestParams,
               cv: CrossValidation) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """Each patient's outer test fold per repeat (stratified by label set): {patient: (its repeat-0
    test fold as the ``split`` name "foldK", the ";"-joined folds of every repeat)}, and the store
    header's ``cv`` entry. Every fold of every repeat is checked here, so a store that cannot run
    the protocol is never written."""
    per_class = {c: sum(c in labs for labs in patient_labels.values()) for c in classes}
    few = {c: n for c, n in per_class.items() if n < cv.folds + 2}
    if few:
        raise InputError(f"{cv.folds}-fold cross-validation needs, per class, one patient in each test fold and 2 more for the "
                         f"inner train and validation split; class(es) {few} have fewer than {cv.folds + 2} patients: "
                         "add patients or lower --set experiment.folds")
    folds = [assign_folds(patient_labels, folds=cv.folds, seed=params.seed, repeat=r) for r in range(cv.repeats)]
    for r, fold_of in enumerate(folds):
        for k in range(cv.folds):
            try:
                roles = fold_roles(patient_labels, fold_of, fold=k, val_share=cv.val_share, fractions=params.train_fractions,
                                   seed=repeat_seed(params.seed, r))
            except ValueError as exc:
                raise InputError(f"repeat {r}, {exc}") from None
            for c in classes:
                for role in ("test", "val"):
                    if not any(role == roles[p][0] and c in labs for p, labs in patient_labels.items()):
                        raise InputError(f"repeat {r}, fold {k}: class {c!r} has no {role} patient; add patients or lower "
                                         "--set experiment.folds")
    out = {p: (f"fold{folds[0][p]}", ";".join(str(f[p]) for f in folds)) for p in patient_labels}
    return out, {"folds": cv.folds, "repeats": cv.repeats, "val_share": cv.val_share, "seed": params.seed}


def _check_coverage(rows: list[dict[str, Any]], classes: list[str], params: IngestParams) -> None:
    """Every class must reach every split and the smallest training fraction."""
    by = defaultdict(set)
    for r in rows:
        by[(r["split"], r["label"])].add(r["patient_id"])
    for split in SPLIT_NAMES:
        for c in classes:
            if not by[(split, c)]:
                n = len(set().union(*(by[(s, c)] for s in SPLIT_NAMES)))
                raise InputError(
                    f"class {c!r} has no patient in the {split} split ({n} patient(s) in all); "
                    "each class needs at least 3 patients (one per split) — add patients or change --split-fractions"
                )
    smallest = min(params.train_fractions)
    for c in classes:
        if not any(r["label"] == c and r["split"] == "train" and r["train_fraction"] != "" and r["train_fraction"] <= smallest for r in rows):
            raise InputError(f"class {c!r} has no training patient in the smallest training fraction {smallest}")


