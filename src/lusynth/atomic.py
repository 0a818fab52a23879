"""Atomic outputs: a stage writes into a temporary sibling directory, then renames it into place.

A reader therefore sees either the previous complete output or the new complete output, never a
half-written one. The temporary directory is ``<parent>/.tmp-<name>-<pid>-*/out``: its wrapper
carries lusynth's temp marker (:mod:`lusynth.tempspace`), never the output itself, so a crash or a
``kill -9`` leaves only a marked ``.tmp-*`` directory that the next run removes once its owner is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lusynth.tempspace import discard, make_temp_dir


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``target`` when the block exits cleanly."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True or choose another --out")
    wrapper = make_temp_dir(target.parent, prefix=f".tmp-{target.name}-")
    try:
        tmp = wrapper / "out"
        tmp.mkdir()
        yield tmp
        if target.exists():
            os.replace(target, wrapper / "old")  # removed with the wrapper (by the next run after a kill)
        os.replace(tmp, target)
    finally:
        discard(wrapper)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, fixed indent, trailing newline) so outputs are byte-stable."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write deterministic JSON atomically."""
    atomic_write_text(path, dumps_json(obj))
