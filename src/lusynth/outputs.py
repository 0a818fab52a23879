"""Which directories a stage may replace with its output.

A stage's output is renamed into place over whatever ``--out`` names (:func:`lusynth.atomic.atomic_dir`),
so before any work starts :func:`check_replaceable` refuses a target that would lose data: an
existing file, a directory holding something no run of this stage wrote (unless ``force``), and,
even with ``force``, the current directory, the home directory, ``/`` and any directory that is or
contains one of the stage's inputs.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from pathlib import Path

from lusynth.errors import InputError
from lusynth.stagecache import STAGE_FILE

__all__ = ["check_replaceable", "written_by"]

_FIX = "choose another --out, or pass --force to replace it"
_COUNT_LIMIT = 1000  # counting every file of a huge folder only to say "holds N files" is not worth it


def written_by(directory: Path) -> str | None:
    """The stage whose output ``directory`` is (its ``.lusynth-stage.json``), None if none wrote it."""
    try:
        marker = json.loads((directory / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return None
    stage = marker.get("stage") if isinstance(marker, dict) else None
    return stage if isinstance(stage, str) else None


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def _holds(directory: Path) -> str:
    entries = list(itertools.islice((p for p in directory.rglob("*") if not p.is_dir()), _COUNT_LIMIT))
    n = f"{len(entries)}+" if len(entries) == _COUNT_LIMIT else str(len(entries))
    if not entries:
        return "holds only empty folders that no lusynth stage wrote"
    return f"holds {n} file{'' if n == '1' else 's'} that no lusynth stage wrote"


def check_replaceable(
    target: str | os.PathLike[str],
    *,
    stage: str,
    force: bool = False,
    protected: Iterable[str | os.PathLike[str]] = (),
    unfinished: Iterable[str] = (),
) -> None:
    """Raise :class:`InputError` unless stage ``stage`` may replace ``target`` with its output.

    Allowed: an absent path, an empty directory, an earlier output of ``stage`` (its marker names
    ``stage``, or it holds one of the relative paths ``unfinished``: a resumable run cut short) and,
    with ``force``, any other directory. Never: a file, ``/``, the home or current directory, or a
    directory that is or contains one of ``protected`` (the stage's inputs) or the current directory.
    """
    raw = Path(target)
    path = raw.resolve()
    never = [(Path.cwd().resolve(), "the current directory"), (Path.home().resolve(), "the home directory")]
    never += [(Path(p).resolve(), f"the input {p}") for p in protected if "://" not in str(p)]
    for p, what in never:
        if _contains(path, p):
            which = what if p == path else f"a folder containing {what}"
            raise InputError(f"--out {raw}: is {which}; an output never replaces its source or a folder containing it, "
                             "not even with --force; choose another --out")
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise InputError(f"--out {raw}: is an existing file, not a directory; choose another --out")
    if next(path.iterdir(), None) is None:
        return
    other = written_by(path)
    if other == stage or any((path / u).exists() for u in unfinished):
        return
    if force:
        return
    holds = f"holds the output of the {other!r} stage" if other else _holds(path)
    raise InputError(f"--out {raw}: {holds}; {_FIX}")
