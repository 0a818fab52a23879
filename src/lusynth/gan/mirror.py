"""A durable copy of a GAN run's resumable state, outside the machine that trains it.

``--resume`` continues from ``out/checkpoints/last.pt``. On a cluster that file lives in the pod:
when KFP retries a failed or evicted ``train_gan`` task, the new pod starts with an empty output
directory and the run would start over (hours at the paper's size). A mirror keeps the state
where the next pod can reach it:

* ``push(out_dir)`` after every ``last.pt`` write copies what a resume needs (``checkpoints/``:
  ``last.pt`` plus the evaluated ``step_*.pt`` that the fidelity history points at, and the
  fidelity embedding ``embedding.pt``) to the mirror;
* ``pull(out_dir)`` at the start of a resumed run brings them back when the local copy is missing.

A mirror is an ``s3://bucket/prefix`` (through :mod:`lusynth.storage.s3`: a reader only sees a
complete upload, checksums verified on download, unchanged files are not uploaded again) or a
local directory (a persistent volume), where each file lands atomically, ``last.pt`` last, and
only new or changed files are copied. The stage gives every GAN its own
prefix under a root, named by its stage key (data, parameters and code), so a retry finds its
own state and a changed run never picks up another's.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from lusynth.gan.checkpoint import CHECKPOINT_DIR, LAST_FILE
from lusynth.tempspace import sweep, temp_dir

__all__ = ["CheckpointMirror", "MIRRORED", "mirror_uri"]

#: What a resume needs, relative to the GAN's output directory.
MIRRORED = (CHECKPOINT_DIR, "embedding.pt")


@dataclass(frozen=True)
class CheckpointMirror:
    uri: str

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def _stage(self, out_dir: Path, into: Path) -> int:
        """Hard-link (copy across devices) the mirrored files of ``out_dir`` into ``into``; returns bytes.

        A link is a snapshot: checkpoints are replaced by ``os.replace``, never rewritten in place."""
        total = 0
        for name in MIRRORED:
            src = out_dir / name
            files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src] if src.is_file() else []
            for f in files:
                target = into / f.relative_to(out_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(f, target)
                except OSError:
                    shutil.copy2(f, target)
                total += target.stat().st_size
        return total

    def push(self, out_dir: str | os.PathLike[str]) -> dict[str, float]:
        """Copy the resumable state of ``out_dir`` to the mirror (complete or not at all)."""
        out_dir = Path(out_dir)
        if not (out_dir / CHECKPOINT_DIR / LAST_FILE).is_file():
            raise FileNotFoundError(f"{out_dir / CHECKPOINT_DIR / LAST_FILE}: nothing to mirror yet")
        t0 = time.perf_counter()
        _clean_stale(out_dir)
        with temp_dir(out_dir, prefix=".mirror-") as tmp:
            staged = Path(tmp) / "state"
            staged.mkdir()
            size = self._stage(out_dir, staged)
            if self.is_s3:
                from lusynth.storage.s3 import upload_dir

                info = upload_dir(staged, self.uri, reuse_unchanged=True)
                sent = float(info["bytes_uploaded"])
            else:
                sent = float(self._push_dir(staged))
        return {"bytes": float(size), "bytes_sent": sent, "seconds": time.perf_counter() - t0}

    def _push_dir(self, staged: Path) -> int:
        """Bring a directory mirror in line with ``staged``, copying only new or changed files; returns bytes copied.

        Each file lands by ``os.replace``; ``last.pt`` goes last and stale files go after it, so
        the mirror's ``last.pt`` never points at a step checkpoint it lacks. A copy keeps the
        source's size and mtime (``copy2``), which is how an unchanged file is recognised."""
        dest = Path(self.uri)
        last = Path(CHECKPOINT_DIR) / LAST_FILE
        files = sorted((p.relative_to(staged) for p in staged.rglob("*") if p.is_file()), key=lambda r: (r == last, str(r)))
        sent = 0
        for rel in files:
            src, dst = staged / rel, dest / rel
            st = src.stat()
            if dst.is_file() and (dst.stat().st_size, dst.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns):
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".tmp-{dst.name}")
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)
            sent += st.st_size
        keep = set(files)
        for p in sorted(dest.rglob("*"), reverse=True):
            if p.is_file() and p.relative_to(dest) not in keep:
                p.unlink()
        return sent

    def exists(self) -> bool:
        if self.is_s3:
            from lusynth.storage.s3 import IncompleteUpload, read_manifest

            try:
                manifest = read_manifest(self.uri)
            except IncompleteUpload:  # nothing mirrored yet (an unreachable store raises, never "empty")
                return False
            return any(f["path"] == f"{CHECKPOINT_DIR}/{LAST_FILE}" for f in manifest.get("files", []))
        return (Path(self.uri) / CHECKPOINT_DIR / LAST_FILE).is_file()

    def pull(self, out_dir: str | os.PathLike[str]) -> bool:
        """Bring the mirrored state into ``out_dir`` (replacing those files there); False if the mirror is empty."""
        if not self.exists():
            return False
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        _clean_stale(out_dir)
        with temp_dir(out_dir, prefix=".mirror-") as tmp:
            got = Path(tmp) / "state"
            if self.is_s3:
                from lusynth.storage.s3 import download_dir

                download_dir(self.uri, got)  # sizes and SHA-256 checked against the manifest
            else:
                shutil.copytree(self.uri, got, copy_function=shutil.copy2, ignore=shutil.ignore_patterns(".tmp-*"))
            for name in MIRRORED:
                src, dest = got / name, out_dir / name
                if not src.exists():
                    continue
                if dest.is_dir():
                    shutil.rmtree(dest)
                elif dest.exists():
                    dest.unlink()
                os.replace(src, dest)
        return True


def _clean_stale(out_dir: Path) -> None:
    """Remove staging folders a killed push or pull left behind (they are never part of a result);
    only marked ones whose process is gone (a concurrent push keeps its own)."""
    sweep(out_dir, ".mirror-")


def mirror_uri(root: str, stage_key: str, label: str, fraction: float) -> str:
    """The mirror of one GAN under ``root``: readable name plus the stage key (data, params, code)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-") or "class"
    return f"{root.rstrip('/')}/{slug}-{fraction:g}-{stage_key[:16]}"
