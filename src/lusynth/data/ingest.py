"""The ingest stage: what a user has (images, clips, DICOM; a folder, a CSV, an s3:// prefix, or
nothing: the built-in phantom) -> a frame store with patient-level splits, plus a report.

Every input is accounted for: accepted frames are counted per class and split, every rejected file
(and every dropped duplicate frame) is listed with its reason. The frame store holds no original
file name, no DICOM header value and no raw patient id: patients and clips are pseudonymised with
a keyed hash. The report, which names files, is written *beside* the store, for the operator.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lusynth import __version__
from lusynth.atomic import atomic_write_json, atomic_write_text
from lusynth.data.framestore import FrameStoreWriter, frame_hash
from lusynth.data.keys import load_key
from lusynth.data.pseudonym import pseudonymise
from lusynth.data.splits import SPLIT_NAMES, nested_fractions, split_patients
from lusynth.errors import InputError, RejectedInput
from lusynth.params import check, check_choices

REPORT_JSON = "ingest_report.json"
REPORT_TXT = "ingest_report.txt"


@dataclass(frozen=True)
class IngestParams:
    """Ingest parameters (defaults = the demo profile)."""

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"image_size": (32, 64, 128, 256), "square": ("crop", "pad"),
                                                     "video_mode": ("even", "every")}

    image_size: int = 64  # output frames are image_size x image_size uint8 (64 / 128 / 256)
    square: str = "crop"  # how a non-square frame becomes square: centre "crop" or zero "pad"
    min_side: int = 32  # frames whose short side is smaller are rejected as too_small
    video_mode: str = "even"  # clips: "even" = video_frames spread over the clip; "every" = every video_step-th
    video_frames: int = 8
    video_step: int = 5
    max_frames_per_clip: int = 64
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

    def __post_init__(self) -> None:
        check_choices(self, "ingest")
        check(self.min_side >= 1, "ingest", "min_side", self.min_side, "must be >= 1")
        check(self.video_frames >= 1 and self.video_step >= 1 and self.max_frames_per_clip >= 1, "ingest", "video_frames",
              self.video_frames, "video_frames, video_step and max_frames_per_clip must be >= 1")
        check(len(self.split_fractions) == 3 and all(f > 0 for f in self.split_fractions), "ingest", "split_fractions",
              self.split_fractions, "three positive numbers (train, val, holdout), e.g. 0.6,0.2,0.2")
        check(bool(self.train_fractions) and all(0 < f <= 1 for f in self.train_fractions), "ingest", "train_fractions",
              self.train_fractions, "nested training fractions in (0, 1], e.g. 0.5,1.0")
        check(self.workers >= 0, "ingest", "workers", self.workers, "must be >= 0 (0 = the CPU quota)")


@dataclass
class SourceItem:
    """One input file with its labels (before decoding)."""

    path: Path
    display: str  # how the report names it (relative path or URI)
    label: str
    patient: str
    video: str
    kind: str = "unknown"  # image | video | dicom, from readers.input_kind


@dataclass
class IngestResult:
    store: Path
    report_dir: Path
    header: dict[str, Any]
    report: dict[str, Any] = field(repr=False)


@dataclass
class IngestReport:
    """The ingest report artefact: every input accounted for (accepted or rejected with a reason)."""

    path: Path
    report: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, report_dir: str | os.PathLike[str]) -> IngestReport:
        """Read a report directory written by ingest."""
        from lusynth.util import read_json

        d = Path(report_dir)
        return cls(path=d, report=read_json(d / REPORT_JSON, what="an ingest report", hint="run `lusynth ingest` to write one"))

    def summary(self) -> str:
        """The readable summary (:func:`summarise`)."""
        return summarise(self.report)


# --------------------------------------------------------------------------------------------
# discovering inputs


def _media_files(root: Path) -> list[Path]:
    """Every file under ``root`` that a reader would try (hidden files and CSVs excluded)."""
    from lusynth.data.readers import input_kind

    return [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".csv" and input_kind(p) is not None
    ]


def _rel(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


def items_from_csv(csv_path: Path, params: IngestParams, rejected: list[dict[str, str]]) -> list[SourceItem]:
    """Read a labels CSV; rows naming missing files or without a label go to ``rejected``."""
    root = csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{csv_path}: cannot read the labels CSV ({exc})") from None
    need = {
        "path": params.path_column,
        "label": params.label_column,
        "patient": params.patient_column,
    }
    missing = [f"{c!r} (--{k}-column)" for k, c in need.items() if c not in columns]
    if missing:
        raise InputError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; the file has {columns}. "
            "Rename the columns or pass the --*-column options"
        )
    has_video = params.video_column in columns
    items: list[SourceItem] = []
    seen: dict[Path, int] = {}
    for lineno, row in enumerate(rows, start=2):
        rel = (row.get(params.path_column) or "").strip()
        label = (row.get(params.label_column) or "").strip()
        patient = (row.get(params.patient_column) or "").strip()
        where = f"{csv_path.name} row {lineno}"
        if not rel:
            rejected.append({"file": where, "reason": "no_path", "detail": f"empty {params.path_column!r}"})
            continue
        path = (root / rel).resolve()
        if path in seen:
            rejected.append({"file": rel, "reason": "duplicate_row", "detail": f"{where} repeats row {seen[path]}"})
            continue
        seen[path] = lineno
        if not path.is_file():
            rejected.append({"file": rel, "reason": "missing_file", "detail": f"{where}: no such file next to the CSV"})
            continue
        if not label:
            rejected.append({"file": rel, "reason": "no_label", "detail": f"{where}: empty {params.label_column!r}"})
            continue
        if not patient:
            rejected.append({"file": rel, "reason": "no_patient", "detail": f"{where}: empty {params.patient_column!r}"})
            continue
        video = (row.get(params.video_column) or "").strip() if has_video else ""
        items.append(SourceItem(path, rel, label, patient, video or f"{patient}/{rel}", _kind(path)))
    listed = set(seen)
    for p in _media_files(root):
        if p.resolve() not in listed:
            rejected.append({"file": _rel(p, root), "reason": "no_label", "detail": f"not listed in {csv_path.name}"})
    return items


def items_from_folders(root: Path, rejected: list[dict[str, str]]) -> list[SourceItem]:
    """Class sub-folders: ``root/<class>/[<patient>/]file``. Without patient folders each file is its own patient."""
    items: list[SourceItem] = []
    for p in _media_files(root):
        parts = p.relative_to(root).parts
        rel = "/".join(parts)
        if len(parts) < 2:
            rejected.append({"file": rel, "reason": "no_label", "detail": "not inside a class sub-folder"})
            continue
        label = parts[0]
        patient = parts[1] if len(parts) >= 3 else rel
        items.append(SourceItem(p, rel, label, patient, rel, _kind(p)))
    return items


# --------------------------------------------------------------------------------------------
# decoding


def _decode(item: SourceItem, params: IngestParams) -> tuple[list[tuple[int, np.ndarray]], list[tuple[int, str]]]:
    """Decode and prepare one file: (accepted frames, rejected frames as (index, reason))."""
    from lusynth.data.preprocess import prepare_frame
    from lusynth.data.readers import VideoSampling, read_frames

    sampling = VideoSampling(
        mode=params.video_mode,
        frames=params.video_frames,
        step=params.video_step,
        max_frames=params.max_frames_per_clip,
    )
    ok: list[tuple[int, np.ndarray]] = []
    bad: list[tuple[int, str]] = []
    for idx, arr in read_frames(item.path, sampling=sampling):
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


@dataclass
class _Source:
    root: Path
    csv: Path | None
    described: str  # how the report names the source
    params: IngestParams
    revision: str | None = None  # the commit of a dvc:// source


def _resolve_source(source: str | None, params: IngestParams, tmp: Path, progress: bool, phantom: Any) -> _Source:
    """Materialise the source as a local folder (phantom, s3:// and dvc:// into ``tmp``)."""
    csv_path: Path | None
    if source is None:
        from dataclasses import replace

        from lusynth.data.phantom import CONSOLIDATION, PhantomParams
        from lusynth.data.phantom_files import write_phantom_dataset

        # the phantom is written as files and read back, so the demo exercises the real readers
        phantom_csv = write_phantom_dataset(tmp / "phantom", phantom or PhantomParams(), progress=progress)
        if params.positive_class is None:
            params = replace(params, positive_class=CONSOLIDATION)
        return _Source(phantom_csv.parent, phantom_csv, "built-in phantom", params)
    if source.startswith("s3://"):
        from lusynth.storage.s3 import download_prefix

        root = tmp / "s3"
        download_prefix(source, root, progress=progress)
        csv_path = root / params.labels_csv if params.labels_csv else None
        if csv_path is not None and not csv_path.is_file():
            raise InputError(f"{source}: labels CSV {params.labels_csv!r} not found under the prefix")
        return _Source(root, csv_path, source, params)
    if source.startswith("dvc://"):
        from lusynth.data.dvc_source import fetch

        root, rev = fetch(source, tmp / "dvc")
        if not root.is_dir():
            raise InputError(f"{source}: a DVC source must be a tracked folder (labels via --labels-csv inside it)")
        csv_path = root / params.labels_csv if params.labels_csv else None
        if csv_path is not None and not csv_path.is_file():
            raise InputError(f"{source}: labels CSV {params.labels_csv!r} not found in the tracked folder")
        return _Source(root, csv_path, f"{source} (commit {rev})", params, rev)
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f"{source}: no such file or folder; pass a folder of class sub-folders, a labels CSV, or an s3:// prefix")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise InputError(f"{source}: a single file is not a data source; pass its folder or a labels CSV")
        return _Source(path.parent, path, str(path), params)
    csv_path = None
    if params.labels_csv:
        csv_path = Path(params.labels_csv)
        if not csv_path.is_absolute():
            csv_path = path / csv_path
        if not csv_path.is_file():
            raise InputError(f"{csv_path}: labels CSV not found (--labels-csv is relative to the source folder)")
    return _Source(path, csv_path, str(path), params)


def ingest(
    source: str | None,
    out: str | os.PathLike[str],
    *,
    params: IngestParams = IngestParams(),
    report_dir: str | os.PathLike[str] | None = None,
    phantom: Any = None,
    progress: bool = False,
) -> IngestResult:
    """Run the ingest stage; see the module docstring.

    ``source=None`` ingests the built-in phantom, made with ``phantom`` (a PhantomParams; default
    the demo phantom).
    """
    from lusynth.runtime import cpu_quota

    out = Path(out)
    report_dir = Path(report_dir) if report_dir else out.with_name(out.name + "-report")
    t0 = time.perf_counter()
    key, key_origin = load_key()
    rejected: list[dict[str, str]] = []
    duplicates: list[dict[str, Any]] = []
    frame_rejects: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lusynth-ingest-") as tmp_s:
        src = _resolve_source(source, params, Path(tmp_s), progress, phantom)
        root, csv_path, described, params = src.root, src.csv, src.described, src.params
        items = items_from_csv(csv_path, params, rejected) if csv_path else items_from_folders(root, rejected)
        listing_rejects = len(rejected)
        report: dict[str, Any] = {
            "lusynth_version": __version__,
            "source": described,
            "labels": str(csv_path.name) if csv_path else "class sub-folders",
            "params": _params_dict(params),
            "pseudonym_key": key_origin,
        }
        try:
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
            header, stats = _write_store(items, params, out, key, rejected, duplicates, frame_rejects, classes, positive, progress, src.revision)
        except InputError as exc:
            report.update(status="failed", error=str(exc), rejected=rejected, duplicates=duplicates, frame_rejects=frame_rejects)
            _write_report(report_dir, report)
            raise
    report.update(
        status="ok",
        seconds=round(time.perf_counter() - t0, 3),
        frames_per_second=round(header["n_frames"] / max(time.perf_counter() - t0, 1e-9), 1),
        files_seen=len(items) + listing_rejects,
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
    _write_report(report_dir, report)
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
) -> tuple[dict[str, Any], dict[str, Any]]:
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
                reason = bad[0][1].split(" ")[0] if bad else "empty"
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
        split_of = split_patients(patient_labels, fractions=params.split_fractions, seed=params.seed)
        train_patients = {p: labs for p, labs in patient_labels.items() if split_of[p] == "train"}
        frac_of = nested_fractions(train_patients, fractions=params.train_fractions, seed=params.seed)
        for row in writer.rows:
            row["split"] = split_of[row["patient_id"]]
            row["train_fraction"] = frac_of.get(row["patient_id"], "") if row["split"] == "train" else ""
        _check_coverage(writer.rows, classes, params)
        header = writer.finish(
            kind="real",
            classes=classes,
            positive_class=positive,
            extra_header={
                "split_fractions": list(params.split_fractions),
                "train_fractions": sorted(params.train_fractions),
                "ingest_params": _params_dict(params),
                "lusynth_version": __version__,
                "pseudonymised": True,
                **({"dvc_revision": dvc_rev} if dvc_rev else {}),
            },
        )
    patients = {s: {c: 0 for c in classes} for s in SPLIT_NAMES}
    for pid, labs in patient_labels.items():
        for lab in labs:
            patients[split_of[pid]][lab] += 1
    mixed = sorted(p for p, labs in patient_labels.items() if len(labs) > 1)
    return header, {"files_accepted": files_accepted, "patients": patients, "mixed": mixed}


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


def _kind(path: Path) -> str:
    from lusynth.data.readers import input_kind

    return input_kind(path) or "unknown"


def _write_report(report_dir: Path, report: dict[str, Any]) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report_dir / REPORT_JSON, report)
    atomic_write_text(report_dir / REPORT_TXT, summarise(report))


def summarise(report: dict[str, Any]) -> str:
    """A readable summary of an ingest report."""
    lines = [f"lusynth ingest: {report.get('status', '?')}  source: {report.get('source')}  labels: {report.get('labels')}"]
    if report.get("status") == "failed":
        lines.append(f"error: {report.get('error')}")
    if "counts" in report:
        classes = report["classes"]
        lines.append(
            f"{report['frames']} frames from {report['files_accepted']} files in {report['seconds']} s "
            f"({report['frames_per_second']} frames/s); positive class: {report['positive_class']}"
        )
        lines.append(f"{'split':<9}" + "".join(f"{c[:22]:>24}" for c in classes) + "   (frames / patients)")
        for s in SPLIT_NAMES:
            cells = "".join(
                f"{str(report['counts'].get(s, {}).get(c, 0)) + ' / ' + str(report['patients'][s][c]):>24}" for c in classes
            )
            lines.append(f"{s:<9}{cells}")
        if report.get("patients_with_two_labels"):
            lines.append(f"patients whose clips carry two labels (kept, labels are per clip): {len(report['patients_with_two_labels'])}")
    rej = report.get("rejected", [])
    lines.append(f"rejected files: {len(rej)}" + (f"  {report.get('rejected_by_reason')}" if rej else ""))
    for r in rej[:50]:
        lines.append(f"  {r['file']}: {r['reason']}" + (f" — {r['detail']}" if r.get("detail") else ""))
    if len(rej) > 50:
        lines.append(f"  ... {len(rej) - 50} more in {REPORT_JSON}")
    dups = report.get("duplicates", [])
    lines.append(f"duplicate frames dropped: {len(dups)}")
    for d in dups[:10]:
        lines.append(f"  {d['file']}#{d['frame_index']} = {d['duplicate_of']}")
    fr = report.get("frame_rejects", [])
    if fr:
        lines.append(f"frames rejected inside accepted files: {len(fr)}")
    return "\n".join(lines) + "\n"
