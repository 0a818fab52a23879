"""Discovering ingest inputs: a SOURCE argument (a folder, a labels CSV, an s3:// prefix, a dvc://
folder, or nothing: the built-in phantom) -> a local folder and the list of files to decode, each with
its label, patient and clip.

Files that cannot become an item (unlisted, unlabelled, missing, repeated, outside the data folder)
are appended to the caller's ``rejected`` list with a reason, so the report accounts for every input.

Paths stay inside the data folder (the CSV's folder, or the class-folder root): a CSV row that is
absolute or resolves elsewhere (``..``, a symlink) is refused as ``outside_data_folder`` before
anything is opened, unless ``IngestParams.allow_outside_paths`` is set — a labels CSV from someone
else must not make ingest read ``/etc/passwd`` or files beside the data.
"""

from __future__ import annotations

import csv
import errno
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lusynth.errors import InputError

if TYPE_CHECKING:  # ingest imports this module; the parameters are only annotated here
    from lusynth.data.ingest import IngestParams


@dataclass
class SourceItem:
    """One input file with its labels (before decoding)."""

    path: Path
    display: str  # how the report names it (relative path or URI)
    label: str
    patient: str
    video: str
    kind: str = "unknown"  # image | video | dicom, from readers.input_kind


def _outside(path: Path, root: Path) -> bool:
    """Whether ``path`` (resolved: symlinks followed) lies outside ``root`` (resolved)."""
    return not path.resolve().is_relative_to(root.resolve())


def _display(text: str) -> str:
    """A name as the report shows it: bytes that are not UTF-8 (Python keeps them as lone
    surrogates) become ``\\xNN`` escapes, so the JSON and text reports can always be written."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_loop(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP


def _walk(root: Path) -> list[tuple[Path, str | None, str]]:
    """Every entry under ``root`` that a user may have meant as an input, sorted by path:
    ``(path, None, "")`` for a file (or a symlink to one) to consider, ``(path, reason, detail)`` for
    one that cannot be (hidden, a symlink loop or a broken one, a symlinked folder, a folder named
    like an image, a FIFO or device). Symlinked folders are not followed: the tree is walked once."""
    from lusynth.data.readers import DICOM_EXTS, IMAGE_EXTS, VIDEO_EXTS

    media_exts = (IMAGE_EXTS | VIDEO_EXTS | DICOM_EXTS) - {""}
    found: list[tuple[Path, str | None, str]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            found.append((folder, "unreadable_folder", f"cannot list the folder: {exc.strerror or exc}"))
            continue
        for e in entries:
            p = Path(e.path)
            if e.name.startswith("."):
                found.append((p, "hidden", "hidden files and folders are not read; rename it without the leading '.' to ingest it"))
                continue
            try:
                if e.is_symlink():
                    try:
                        target = p.resolve(strict=True)
                    except (OSError, RuntimeError) as exc:
                        if _is_loop(exc):
                            found.append((p, "symlink_loop", "a symlink that leads back to itself; remove or fix the link"))
                        else:
                            found.append((p, "broken_symlink", "a symlink to nothing; remove or fix the link"))
                        continue
                    if target.is_dir():
                        if target == p.parent.resolve() or target in p.parent.resolve().parents:
                            found.append((p, "symlink_loop", f"a folder symlink to its own ancestor {target}; not followed"))
                        else:
                            found.append((p, "symlinked_folder", "symlinked folders are not followed; copy the folder in "
                                          "or list its files in a labels CSV"))
                    elif target.is_file():
                        found.append((p, None, ""))
                    else:
                        found.append((p, "not_a_file", "a symlink to a FIFO, socket or device"))
                elif e.is_dir(follow_symlinks=False):
                    if Path(e.name).suffix.lower() in media_exts:
                        found.append((p, "not_a_file", "a folder named like an input file; its files are listed on their own"))
                    stack.append(p)
                elif e.is_file(follow_symlinks=False):
                    found.append((p, None, ""))
                else:
                    found.append((p, "not_a_file", "a FIFO, socket or device, not a file"))
            except OSError as exc:
                found.append((p, "unreadable", f"cannot stat: {exc.strerror or exc}"))
    return sorted(found, key=lambda f: f[0])


def _media_files(root: Path, *, allow_outside: bool = False) -> list[Path]:
    """Every file under ``root`` that a reader would try (hidden files and CSVs excluded). A symlink
    leading out of ``root`` is listed by its extension only: its target is not opened to sniff it."""
    from lusynth.data.readers import IMAGE_EXTS, VIDEO_EXTS, input_kind

    def media(p: Path) -> bool:
        if not allow_outside and _outside(p, root):
            return p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS
        return input_kind(p) is not None

    return [p for p, problem, _ in _walk(root) if problem is None and p.suffix.lower() != ".csv" and media(p)]


def _outside_reject(display: str, where: str, path: Path, root: Path) -> dict[str, str]:
    return {"file": display, "reason": "outside_data_folder",
            "detail": f"{where}: {display!r} resolves to {path}, outside the data folder {root}; move the file into the "
                      "folder, or pass --allow-outside-paths if the CSV is trusted"}


def _rel(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


_DELIMITERS = (",", ";", "\t", "|")


def _delimiter(text: str, path_column: str) -> str:
    """The CSV's delimiter: the one that makes the header hold ``path_column`` (a spreadsheet in a
    European locale writes ``;``), else what :class:`csv.Sniffer` guesses, else a comma."""
    header = text.split("\n", 1)[0]
    for d in _DELIMITERS:
        if path_column in (c.strip() for c in next(csv.reader([header], delimiter=d), [])):
            return d
    try:
        return csv.Sniffer().sniff(text[:65536], delimiters="".join(_DELIMITERS)).delimiter
    except csv.Error:
        return ","


def read_labels_csv(csv_path: Path, path_column: str) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of a labels CSV in UTF-8 (a BOM is fine) with any of ``, ; tab |`` as delimiter.

    Raises one-line :class:`InputError` naming the file, the row and the fix for a file that is not
    UTF-8 (latin-1 / Windows-1252 exports), holds NUL bytes, or breaks the CSV syntax."""
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise InputError(f"{csv_path}: cannot read the labels CSV ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{csv_path} row {row}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the CSV as UTF-8 "
            f"(e.g. `iconv -f latin1 -t utf-8 {csv_path.name} > {csv_path.stem}-utf8.csv`)") from None
    if "\0" in text:
        row = text[: text.index("\0")].count("\n") + 1
        raise InputError(f"{csv_path} row {row}: holds NUL bytes, so it is not a text CSV; export the labels as CSV text")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(text, path_column))
    try:
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        rows = list(reader)
    except csv.Error as exc:
        raise InputError(f"{csv_path} row {reader.line_num}: not valid CSV ({exc}); fix the quoting on that row") from None
    return columns, rows


def items_from_csv(csv_path: Path, params: IngestParams, rejected: list[dict[str, str]]) -> list[SourceItem]:
    """Read a labels CSV; rows naming missing files, files outside the CSV's folder (unless
    ``params.allow_outside_paths``) or without a label go to ``rejected``."""
    root = csv_path.parent
    columns, rows = read_labels_csv(csv_path, params.path_column)
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
    refused: set[Path] = set()  # listed, but outside the folder: reported once, by its row
    for lineno, row in enumerate(rows, start=2):
        rel = (row.get(params.path_column) or "").strip()
        label = (row.get(params.label_column) or "").strip()
        patient = (row.get(params.patient_column) or "").strip()
        where = f"{csv_path.name} row {lineno}"
        if not rel:
            rejected.append({"file": where, "reason": "no_path", "detail": f"empty {params.path_column!r}"})
            continue
        try:
            path = (root / rel).resolve()  # an absolute rel replaces root, so it is caught below too
        except (OSError, RuntimeError):  # Python 3.11 raises RuntimeError for a symlink loop
            rejected.append({"file": rel, "reason": "symlink_loop", "detail": f"{where}: the path is a symlink loop"})
            continue
        if not params.allow_outside_paths and (Path(rel).is_absolute() or _outside(path, root)):
            rejected.append(_outside_reject(rel, where, path, root))
            refused.add(path)
            continue
        if path in seen:
            rejected.append({"file": rel, "reason": "duplicate_row", "detail": f"{where} repeats row {seen[path]}"})
            continue
        seen[path] = lineno
        if not path.is_file():
            if path.exists():
                rejected.append({"file": rel, "reason": "not_a_file", "detail": f"{where}: a folder, FIFO or device, not a file"})
            else:
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
    listed = set(seen) | refused
    for p in _media_files(root, allow_outside=params.allow_outside_paths):
        if p.resolve() not in listed:
            rejected.append({"file": _display(_rel(p, root)), "reason": "no_label", "detail": f"not listed in {csv_path.name}"})
    return items


def items_from_folders(root: Path, rejected: list[dict[str, str]], *, allow_outside: bool = False) -> list[SourceItem]:
    """Class sub-folders: ``root/<class>/[<patient>/]file``. Without patient folders each file is its own patient.

    Every entry under ``root`` is accounted for: what cannot become an item goes to ``rejected``
    with its reason (``hidden``, ``symlink_loop``, ``broken_symlink``, ``symlinked_folder``,
    ``not_a_file``, ``unsupported_extension``, ``unused_csv``, ``no_label``, and
    ``outside_data_folder`` for a symlink leading out of ``root`` unless ``allow_outside``)."""
    from lusynth.data.readers import IMAGE_EXTS, VIDEO_EXTS, input_kind

    items: list[SourceItem] = []
    for p, problem, detail in _walk(root):
        parts = [_display(x) for x in p.relative_to(root).parts]
        rel = "/".join(parts)
        if problem is not None:
            rejected.append({"file": rel, "reason": problem, "detail": detail})
            continue
        outside = not allow_outside and _outside(p, root)
        if outside:
            if p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:  # its target is not opened to sniff it
                rejected.append(_outside_reject(rel, rel, p.resolve(), root))
            else:
                rejected.append({"file": rel, "reason": "outside_data_folder",
                                 "detail": f"a symlink to {p.resolve()}, outside the data folder {root}"})
            continue
        if p.suffix.lower() == ".csv":
            rejected.append({"file": rel, "reason": "unused_csv",
                             "detail": "a CSV inside a class-folder source is not read; pass it as SOURCE or with --labels-csv"})
            continue
        kind = input_kind(p)
        if kind is None:
            supported = ", ".join(sorted(IMAGE_EXTS | VIDEO_EXTS | {".dcm", ".dicom"}))
            rejected.append({"file": rel, "reason": "unsupported_extension",
                             "detail": f"extension {p.suffix or '(none)'!r} is not a supported input; supported: {supported}"})
            continue
        if len(parts) < 2:
            rejected.append({"file": rel, "reason": "no_label", "detail": "not inside a class sub-folder"})
            continue
        label = parts[0]
        patient = parts[1] if len(parts) >= 3 else rel
        items.append(SourceItem(p, rel, label, patient, rel, kind))
    return items


def _kind(path: Path) -> str:
    from lusynth.data.readers import input_kind

    return input_kind(path) or "unknown"


@dataclass
class Source:
    """A source materialised as a local folder, with its labels CSV (None = class sub-folders)."""

    root: Path
    csv: Path | None
    described: str  # how the report names the source
    params: IngestParams
    revision: str | None = None  # the commit of a dvc:// source


def resolve_source(source: str | None, params: IngestParams, tmp: Path | None, progress: bool, phantom: Any) -> Source:
    """Materialise the source as a local folder (phantom, s3:// and dvc:// into ``tmp``, which only
    a local folder or CSV may leave None)."""
    csv_path: Path | None
    scratch = tmp if tmp is not None else Path("/nonexistent")  # only local sources get here without one
    if tmp is None and (source is None or "://" in source):
        raise ValueError("resolve_source: the phantom and s3:// or dvc:// sources need a scratch folder")
    if source is None:
        from dataclasses import replace

        from lusynth.data.phantom import CONSOLIDATION, PhantomParams
        from lusynth.data.phantom_files import write_phantom_dataset

        # the phantom is written as files and read back, so the demo exercises the real readers
        phantom_csv = write_phantom_dataset(scratch / "phantom", phantom or PhantomParams(), progress=progress)
        if params.positive_class is None:
            params = replace(params, positive_class=CONSOLIDATION)
        return Source(phantom_csv.parent, phantom_csv, "built-in phantom", params)
    if source.startswith("s3://"):
        from lusynth.storage.s3 import download_prefix

        root = scratch / "s3"
        download_prefix(source, root, progress=progress)
        csv_path = root / params.labels_csv if params.labels_csv else None
        if csv_path is not None and not csv_path.is_file():
            raise InputError(f"{source}: labels CSV {params.labels_csv!r} not found under the prefix")
        return Source(root, csv_path, source, params)
    if source.startswith("dvc://"):
        from lusynth.data.dvc_source import fetch

        root, rev = fetch(source, scratch / "dvc")
        if not root.is_dir():
            raise InputError(f"{source}: a DVC source must be a tracked folder (labels via --labels-csv inside it)")
        csv_path = root / params.labels_csv if params.labels_csv else None
        if csv_path is not None and not csv_path.is_file():
            raise InputError(f"{source}: labels CSV {params.labels_csv!r} not found in the tracked folder")
        return Source(root, csv_path, f"{source} (commit {rev})", params, rev)
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f"{source}: no such file or folder; pass a folder of class sub-folders, a labels CSV, or an s3:// prefix")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise InputError(f"{source}: a single file is not a data source; pass its folder or a labels CSV")
        return Source(path.parent, path, str(path), params)
    csv_path = None
    if params.labels_csv:
        csv_path = Path(params.labels_csv)
        if not csv_path.is_absolute():
            csv_path = path / csv_path
        if not csv_path.is_file():
            raise InputError(f"{csv_path}: labels CSV not found (--labels-csv is relative to the source folder)")
    return Source(path, csv_path, str(path), params)
