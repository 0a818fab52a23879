"""The frame store: the interchange format between stages (docs/architecture.md).

A frame store is a directory::

    frames.npy     uint8 array (N, S, S), loaded memory-mapped
    manifest.csv   one row per frame (columns below, then any extra provenance columns)
    header.json    schema version, kind, image size, classes, counts, content digest, parameters

It is written atomically (temporary sibling directory, then rename) and deterministically: the
same frames and rows give byte-identical files. The ``content_digest`` covers the pixels and the
manifest, so it identifies the data version independently of where the directory lives.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lusynth.atomic import atomic_dir, dumps_json
from lusynth.errors import FrameStoreError

SCHEMA_VERSION = 1
FRAMES_FILE = "frames.npy"
MANIFEST_FILE = "manifest.csv"
HEADER_FILE = "header.json"

#: Required manifest columns, in file order. ``train_fraction`` is the smallest nested training
#: fraction whose patients include this frame's patient (empty outside the train split).
MANIFEST_COLUMNS: tuple[str, ...] = (
    "frame_id",
    "patient_id",
    "video_id",
    "frame_index",
    "label",
    "split",
    "train_fraction",
    "source",
    "content_hash",
)
SPLITS = ("train", "val", "holdout")
#: a patient's role inside one outer split (:meth:`FrameStore.view`)
ROLES = ("train", "val", "test")
#: manifest column of a K-fold store: the patient's outer test fold per repeat, ";"-joined
FOLD_COLUMN = "fold"
_NPY_HEADER_LEN = 128  # fixed so the header can be rewritten in place once N is known


def frame_hash(frame: np.ndarray) -> str:
    """Content hash of one frame: sha256 over shape and pixels."""
    h = hashlib.sha256(f"{frame.shape[0]}x{frame.shape[1]}:".encode())
    h.update(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
    return h.hexdigest()


def _npy_header(shape: tuple[int, ...]) -> bytes:
    d = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape!r}, }}"
    body = d.encode("latin1")
    pad = _NPY_HEADER_LEN - 10 - len(body) - 1
    if pad < 0:  # pragma: no cover - needs > 10^40 frames
        raise ValueError("shape too large for the fixed npy header")
    return b"\x93NUMPY\x01\x00" + (_NPY_HEADER_LEN - 10).to_bytes(2, "little") + body + b" " * pad + b"\n"


def _manifest_bytes(rows: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    rows.to_csv(buf, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL, float_format="%.6g")
    return buf.getvalue().encode("utf-8")


@dataclass
class FrameStore:
    """An opened frame store: ``frames`` is a read-only memory map, ``manifest`` a DataFrame."""

    WHAT: ClassVar[str] = "a frame store (the output of `lusynth ingest`)"

    path: Path
    header: dict[str, Any]
    manifest: pd.DataFrame
    frames: np.ndarray = field(repr=False)
    _roles: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def classes(self) -> list[str]:
        return list(self.header["classes"])

    @property
    def image_size(self) -> int:
        return int(self.header["image_size"])

    @property
    def kind(self) -> str:
        return str(self.header.get("kind", "real"))

    @property
    def digest(self) -> str:
        return str(self.header["content_digest"])

    @property
    def withheld(self) -> dict[str, dict[str, Any]]:
        """Per class a synthetic store releases no frame of (its generator is treated as memorising): generate's
        privacy-filter record of that class (``withheld``: why; ``fraction``, ``gan_seed``, ``fold``,
        ``generator``: which GAN). Empty for any other store."""
        return {str(label): dict(p) for label, p in (self.header.get("privacy_filter") or {}).items() if (p or {}).get("withheld")}

    @property
    def train_fractions(self) -> list[float]:
        """The nested training fractions prepared at ingest (canonical, sorted)."""
        from lusynth.keys import fraction

        return sorted({fraction(f) for f in self.header.get("train_fractions", [1.0])})

    @property
    def folds(self) -> int:
        """K of the outer K-fold cross-validation (1 = the single train/val/holdout split)."""
        return int((self.header.get("cv") or {}).get("folds", 1))

    @property
    def repeats(self) -> int:
        """How many times the K-fold partition was drawn (1 for the single split)."""
        return int((self.header.get("cv") or {}).get("repeats", 1))

    @property
    def n_splits(self) -> int:
        """Outer splits a task key's ``fold`` indexes: folds x repeats (1 for the single split)."""
        return self.folds * self.repeats if self.folds >= 2 else 1

    def split_of(self, fold: int) -> tuple[int, int]:
        """(repeat, outer fold) of the task key index ``fold`` (see :func:`lusynth.data.splits.split_index`)."""
        from lusynth.data.splits import split_of_index

        self._check_fold(fold)
        return split_of_index(int(fold), self.folds)

    def _check_fold(self, fold: int) -> None:
        if not 0 <= int(fold) < self.n_splits:
            what = (f"{self.folds} folds x {self.repeats} repeat(s) (indices 0..{self.n_splits - 1})" if self.folds >= 2
                    else "one train/val/holdout split (fold 0 only)")
            raise FrameStoreError(f"{self.path}: fold {fold} is not in this frame store, which holds {what}; "
                                  "use a fold it holds or re-ingest with --set experiment.folds=K")

    def _fold_roles(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row: role in outer split ``fold`` (train / val / test / ``""``) and its nested training
        fraction (inf outside the training patients)."""
        if fold in self._roles:
            return self._roles[fold]
        self._check_fold(fold)
        m = self.manifest
        if self.folds < 2:  # the single split: its train / val / holdout columns
            split = m["split"].astype(str).to_numpy()
            role = np.select([split == "train", split == "val", split == "holdout"], ["train", "val", "test"], "").astype(object)
            tf = np.nan_to_num(pd.to_numeric(m["train_fraction"], errors="coerce").to_numpy(dtype=float), nan=np.inf)
            tf[role != "train"] = np.inf
            role[(role == "train") & ~np.isfinite(tf)] = ""  # in no nested fraction (the largest is below 1): unused
        else:
            from lusynth.data.splits import fold_roles, repeat_seed

            cv = self.header["cv"]
            repeat, k = self.split_of(fold)
            pid = m["patient_id"].astype(str).to_numpy()
            fold_col = m[FOLD_COLUMN].astype(str).to_numpy()
            labels_of: dict[str, set[str]] = {}
            fold_of: dict[str, int] = {}
            for p, lab, f in zip(pid, m["label"].astype(str).to_numpy(), fold_col, strict=True):
                labels_of.setdefault(p, set()).add(lab)
                fold_of[p] = int(f.split(";")[repeat])
            try:
                roles = fold_roles(labels_of, fold_of, fold=k, val_share=float(cv["val_share"]), fractions=self.train_fractions,
                                   seed=repeat_seed(int(cv.get("seed", 0)), repeat))
            except ValueError as exc:
                raise FrameStoreError(f"{self.path}: {exc}") from None
            role = np.array([roles[p][0] for p in pid], dtype=object)
            tf = np.array([roles[p][1] if roles[p][1] is not None else np.inf for p in pid], dtype=float)
            role[(role == "train") & ~np.isfinite(tf)] = ""  # in no nested fraction: unused inside this fold
        self._roles[fold] = (role.astype(str), tf)
        return self._roles[fold]

    def view(self, fold: int, role: str, *, label: str | None = None, fraction: float | None = None) -> np.ndarray:
        """Row indices of outer split ``fold``'s patients in ``role``: ``test`` (read only by
        evaluation), ``val`` (the inner validation patients: checkpoint choice, near-copy
        threshold, thresholds) or ``train`` (the inner training patients; ``fraction`` = the nested
        training fraction, default the largest); optionally of one class ``label``."""
        if role not in ROLES:
            raise FrameStoreError(f"role {role!r}: choose one of {', '.join(ROLES)}")
        roles, tf = self._fold_roles(int(fold))
        mask = roles == role
        if label is not None:
            if label not in self.classes:
                raise FrameStoreError(f"{self.path}: no class {label!r}; classes are {self.classes}")
            mask &= (self.manifest["label"] == label).to_numpy()
        if fraction is not None and role == "train":
            from lusynth.keys import fraction as canonical

            mask &= tf <= canonical(fraction)  # canonical fractions on both sides: the nested sets compare exactly
        return np.flatnonzero(mask)

    def patients(self, rows: np.ndarray) -> set[str]:
        """The pseudonymous patient ids of rows ``rows``."""
        return set(self.manifest["patient_id"].astype(str).to_numpy()[rows])

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FrameStore:
        """The stage-artefact spelling of :func:`open_store`."""
        return open_store(path)

    def summary(self) -> str:
        """One line for a terminal: what the store holds."""
        counts = self.manifest.groupby(["split", "label"]).size().to_dict()
        per = ", ".join(f"{s}/{lbl} {n}" for (s, lbl), n in sorted(counts.items()))
        return f"frame store {self.path} ({self.kind}): {len(self)} frames, {self.image_size}x{self.image_size}; {per}"

    def kfp_metadata(self) -> dict[str, Any]:
        """What the KFP artefact's metadata shows."""
        return {"digest": self.digest, "frames": len(self), "classes": self.classes, "kind": self.kind}

    def indices(
        self,
        *,
        split: str | None = None,
        label: str | None = None,
        fraction: float | None = None,
    ) -> np.ndarray:
        """Row indices matching a split, a label and (for ``train``) a nested training fraction."""
        m = self.manifest
        mask = np.ones(len(m), dtype=bool)
        if split is not None:
            mask &= (m["split"] == split).to_numpy()
        if label is not None:
            if label not in self.classes:
                raise FrameStoreError(f"{self.path}: no class {label!r}; classes are {self.classes}")
            mask &= (m["label"] == label).to_numpy()
        if fraction is not None:
            from lusynth.keys import fraction as canonical

            # the column holds canonical fractions (written with 6 significant digits), so the
            # nested sets compare exactly
            tf = pd.to_numeric(m["train_fraction"], errors="coerce").to_numpy()
            mask &= np.nan_to_num(tf, nan=np.inf) <= canonical(fraction)
        return np.flatnonzero(mask)

    def labels_as_int(self, idx: np.ndarray | None = None, *, positive: str | None = None) -> np.ndarray:
        """0/1 labels (1 = positive class) for rows ``idx``."""
        positive = positive or self.header.get("positive_class") or self.classes[-1]
        labels = self.manifest["label"].to_numpy()
        if idx is not None:
            labels = labels[idx]
        return (labels == positive).astype(np.int64)


def content_digest_of(path: str | os.PathLike[str]) -> str | None:
    """The content digest a frame store's header records (cheap: the header only), else None."""
    import json

    header = Path(path) / HEADER_FILE
    if not header.is_file():
        return None
    try:
        digest = json.loads(header.read_text()).get("content_digest")
    except (OSError, ValueError):
        return None
    return str(digest) if digest else None


def open_store(path: str | os.PathLike[str]) -> FrameStore:
    """Open a frame store read-only; the pixel array is memory-mapped, not loaded."""
    import json

    path = Path(path)
    if not path.is_dir():
        raise FrameStoreError(f"{path}: not a frame store directory (run `lusynth ingest --out {path}` first)")
    missing = [f for f in (FRAMES_FILE, MANIFEST_FILE, HEADER_FILE) if not (path / f).is_file()]
    if missing:
        raise FrameStoreError(f"{path}: incomplete frame store, missing {', '.join(missing)}; re-run the stage that writes it")
    header = json.loads((path / HEADER_FILE).read_text())
    if header.get("schema_version") != SCHEMA_VERSION:
        raise FrameStoreError(
            f"{path}: frame store schema {header.get('schema_version')!r}, this lusynth reads {SCHEMA_VERSION}; re-run ingest"
        )
    frames = np.load(path / FRAMES_FILE, mmap_mode="r")
    manifest = pd.read_csv(path / MANIFEST_FILE, dtype={"patient_id": str, "video_id": str, "label": str, "split": str, FOLD_COLUMN: str}, keep_default_na=False)
    if len(manifest) != frames.shape[0]:
        raise FrameStoreError(f"{path}: manifest has {len(manifest)} rows but frames.npy has {frames.shape[0]}; the store is corrupt, re-run the stage")
    return FrameStore(path=path, header=header, manifest=manifest, frames=frames)


class FrameStoreWriter:
    """Streams frames into a new frame store with memory bounded by one frame plus the manifest rows.

    Use as a context manager; nothing is visible at ``target`` until :meth:`finish` succeeds::

        with FrameStoreWriter(out, image_size=64) as w:
            w.append(frame, {"patient_id": ..., ...})
            w.finish(kind="real", classes=[...], ...)
    """

    def __init__(self, target: str | os.PathLike[str], *, image_size: int) -> None:
        self.target = Path(target)
        self.image_size = int(image_size)
        self._ctx = atomic_dir(self.target)
        self._rows: list[dict[str, Any]] = []
        self._fh: Any = None
        self._finished = False

    def __enter__(self) -> FrameStoreWriter:
        self._tmp = self._ctx.__enter__()
        self._fh = open(self._tmp / FRAMES_FILE, "wb")
        self._fh.write(_npy_header((0, self.image_size, self.image_size)))
        return self

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The manifest rows appended so far; callers may fill in columns (e.g. splits) before finish()."""
        return self._rows

    def append(self, frame: np.ndarray, row: dict[str, Any]) -> None:
        """Add one (S, S) uint8 frame and its manifest row (``content_hash`` is filled in if absent)."""
        if frame.dtype != np.uint8 or frame.shape != (self.image_size, self.image_size):
            raise ValueError(f"frame must be uint8 {self.image_size}x{self.image_size}, got {frame.dtype} {frame.shape}")
        row = dict(row)
        if "content_hash" not in row:
            row["content_hash"] = frame_hash(frame)
        self._fh.write(np.ascontiguousarray(frame).tobytes())
        self._rows.append(row)

    def extend(self, frames: np.ndarray, rows: Sequence[dict[str, Any]]) -> None:
        for f, r in zip(frames, rows, strict=True):
            self.append(f, r)

    def finish(
        self,
        *,
        kind: str,
        classes: Iterable[str],
        positive_class: str | None = None,
        extra_header: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write manifest and header; return the header. The directory appears on context exit."""
        n = len(self._rows)
        self._fh.seek(0)
        self._fh.write(_npy_header((n, self.image_size, self.image_size)))
        self._fh.close()
        manifest = pd.DataFrame(self._rows)
        for col in MANIFEST_COLUMNS:
            if col not in manifest.columns:
                manifest[col] = ""
        extras = [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
        manifest = manifest[list(MANIFEST_COLUMNS) + sorted(extras)]
        mbytes = _manifest_bytes(manifest)
        (self._tmp / MANIFEST_FILE).write_bytes(mbytes)

        digest = hashlib.sha256()
        with open(self._tmp / FRAMES_FILE, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
        digest.update(mbytes)
        classes = list(classes)
        counts: dict[str, dict[str, int]] = {}
        if n:
            for (split, label), c in manifest.groupby(["split", "label"]).size().items():
                counts.setdefault(str(split), {})[str(label)] = int(c)
        header = {
            "schema_version": SCHEMA_VERSION,
            "kind": kind,
            "image_size": self.image_size,
            "classes": classes,
            "positive_class": positive_class,
            "n_frames": n,
            "counts": counts,
            "content_digest": "sha256:" + digest.hexdigest(),
        }
        header.update(extra_header or {})
        (self._tmp / HEADER_FILE).write_text(dumps_json(header))
        self._finished = True
        return header

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if exc_type is None and not self._finished:
            exc_type, exc = RuntimeError, RuntimeError("FrameStoreWriter closed without finish(); nothing written")
            self._ctx.__exit__(exc_type, exc, None)
            raise exc
        return bool(self._ctx.__exit__(exc_type, exc, tb))


def write_store(
    target: str | os.PathLike[str],
    frames: np.ndarray,
    rows: Sequence[dict[str, Any]],
    *,
    kind: str,
    classes: Iterable[str],
    positive_class: str | None = None,
    extra_header: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a whole in-memory frame array as a frame store (convenience over the writer)."""
    if frames.ndim != 3 or frames.shape[1] != frames.shape[2]:
        raise ValueError(f"frames must be (N, S, S), got {frames.shape}")
    with FrameStoreWriter(target, image_size=frames.shape[1]) as w:
        w.extend(frames, rows)
        header = w.finish(kind=kind, classes=classes, positive_class=positive_class, extra_header=extra_header)
    return header
