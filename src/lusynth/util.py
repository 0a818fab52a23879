"""Small helpers every module shares: names made safe for paths and registries, file digests,
reading a JSON file another stage wrote. One copy each (they had been written several times)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from lusynth.errors import InputError

__all__ = ["display_path", "file_sha256", "read_json", "run_directory", "slugify"]

_HASH_BLOCK = 1 << 20


def slugify(text: object, *, keep: str = "A-Za-z0-9_.-", replacement: str = "-", empty: str = "x") -> str:
    """``text`` with every run of characters outside ``keep`` (a regex character class body)
    replaced by ``replacement``, stripped of leading/trailing replacements; ``empty`` if nothing is left.

    >>> slugify("real+synthetic")
    'real-synthetic'
    """
    slug = re.sub(f"[^{keep}]+", replacement, str(text))
    if replacement:
        slug = slug.strip(replacement)
    return slug or empty


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | os.PathLike[str], *, what: str | None = None, hint: str = "") -> Any:
    """The JSON document at ``path``. A missing or unreadable file raises :class:`InputError`
    naming the file, what it should have been (``what``) and how to make it (``hint``)."""
    p = Path(path)
    label = f"{p.parent}: no {p.name}" + (f" (not {what})" if what else "")
    if not p.is_file():
        raise InputError(label + (f"; {hint}" if hint else ""))
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: unreadable JSON ({exc})" + (f"; {hint}" if hint else "")) from None


def run_directory(*paths: str | os.PathLike[str]) -> str | None:
    """The deepest directory holding all ``paths`` (absolute, normalised, symlinks kept), or None
    when they share nothing but the filesystem root: the folder a report's paths are shown relative to."""
    if not paths:
        return None
    try:
        common = os.path.commonpath([os.path.abspath(p) for p in paths])
    except ValueError:  # different drives
        return None
    return None if os.path.dirname(common) == common else common


def display_path(path: object, base: str | None) -> str:
    """``path`` as a reader of a report should see it: relative to ``base`` (POSIX separators,
    ``.`` for ``base`` itself) when it lies inside it, else unchanged. Pure: no file is touched.

    >>> display_path("/tmp/x/run/frames", "/tmp/x/run")
    'frames'
    >>> display_path("/data/clips", "/tmp/x/run")
    '/data/clips'
    """
    text = str(path)
    if not base or not os.path.isabs(text):
        return text
    rel = os.path.relpath(os.path.normpath(text), base)
    return text if rel == ".." or rel.startswith(".." + os.sep) else Path(rel).as_posix()
