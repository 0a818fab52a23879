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

__all__ = ["check_replaceable", "check_side_output", "mark_output", "written_by"]

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


#: files version control keeps in an output folder (DVC writes a .gitignore naming the tracked files
#: beside them): a folder holding only these counts as empty
_BOOKKEEPING = frozenset({".gitignore", ".dvcignore", ".gitkeep"})


def check_replaceable(
    target: str | os.PathLike[str],
    *,
    stage: str,
    force: bool = False,
    protected: Iterable[str | os.PathLike[str]] = (),
    unfinished: Iterable[str] = (),
    flag: str = "--out",
) -> None:
    """Raise :class:`InputError` unless stage ``stage`` may replace ``target`` with its output
    (``flag``: the option that named it, for the message).

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
            raise InputError(f"{flag} {raw}: is {which}; an output never replaces its source or a folder containing it, "
                             f"not even with --force; choose another {flag}")
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise InputError(f"{flag} {raw}: is an existing file, not a directory; choose another {flag}")
    if all(e.name in _BOOKKEEPING for e in path.iterdir()):
        return  # empty, or only the ignore files git/DVC keep beside tracked outputs
    other = written_by(path)
    if other == stage or any((path / u).exists() for u in unfinished):
        return
    if force:
        return
    holds = f"holds the output of the {other!r} stage" if other else _holds(path)
    raise InputError(f"{flag} {raw}: {holds}; {_FIX.replace('--out', flag)}")


def mark_output(directory: str | os.PathLike[str], stage: str) -> None:
    """Say in ``directory`` that ``stage`` wrote it, so that stage may replace it next time."""
    (Path(directory) / STAGE_FILE).write_text(json.dumps({"stage": stage}))


def check_side_output(
    target: str | os.PathLike[str],
    kind: str,
    *,
    stage: str,
    flag: str,
    force: bool = False,
    protected: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """The rule of :func:`check_replaceable` for a path a stage writes beside its ``--out``
    (``kind`` "dir": a folder it replaces whole; "file": a file it overwrites). A file is replaced
    only when absent or already JSON (an earlier metrics file), or with ``force``; never a folder,
    nor one of ``protected``."""
    raw = Path(target)
    path = raw.resolve()
    for p in protected:
        if "://" not in str(p) and _contains(Path(p).resolve(), path):
            raise InputError(f"{flag} {raw}: lies inside {p}, an input or the output of this stage; choose another {flag}")
    if kind == "dir":
        check_replaceable(target, stage=stage, force=force, protected=protected, flag=flag)
        return
    if not os.path.lexists(path):
        return
    if path.is_dir() or not path.is_file():
        raise InputError(f"{flag} {raw}: is an existing folder or special file, not a file lusynth wrote; choose another {flag}")
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        if not force:
            raise InputError(f"{flag} {raw}: is an existing file that is not a JSON metrics file; "
                             f"choose another {flag}, or pass --force to overwrite it") from None
