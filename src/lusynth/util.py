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

__all__ = ["file_sha256", "read_json", "slugify"]

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
