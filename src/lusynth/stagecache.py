"""Content-addressed stage outputs: the same inputs, parameters and code give the same output, so
a stage whose key was computed before is restored from the cache instead of rerun.

Why our own cache and not only the engine's: KFP's local cache keys ignore edits to the imported
project code (stale hits) and a cluster's cache does not help the CLI; DVC has its own. A stage key
is a SHA-256 over the stage name, its parameters, the digests of its inputs and the digest of the
lusynth source code, so a changed parameter or a code change reruns exactly what depends on it.

Each output directory carries ``.lusynth-stage.json`` with its key; a downstream stage uses that
key as the digest of the input (cheap, and it chains: a changed upstream key changes every key
below it). Frame stores without the file contribute their ``content_digest``.

The cache lives in ``LUSYNTH_STAGE_CACHE`` (default ``~/.cache/lusynth/stages``; ``off`` disables
it). Entries are written atomically; outputs are restored by hard link (copy across devices).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from lusynth.atomic import atomic_dir, dumps_json

STAGE_FILE = ".lusynth-stage.json"
T = TypeVar("T")


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 over the lusynth package's Python sources and shipped profiles."""
    h = hashlib.sha256()
    root = Path(str(resources.files("lusynth")))
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts:
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def input_digest(path: str | os.PathLike[str]) -> str:
    """Digest of a stage input: its stage key, else a frame store's content digest, else its bytes."""
    p = Path(path)
    marker = p / STAGE_FILE
    if marker.is_file():
        return "stage:" + json.loads(marker.read_text())["key"]
    header = p / "header.json"
    if header.is_file():
        digest = json.loads(header.read_text()).get("content_digest")
        if digest:
            return str(digest)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    for q in files:
        h.update(q.relative_to(p).as_posix().encode() if q != p else b"")
        with open(q, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def stage_key(stage: str, params: Mapping[str, Any], inputs: Sequence[str | os.PathLike[str]] = (), *,
              code: Sequence[str] = ()) -> str:
    """The cache key of one stage run."""
    payload = {
        "stage": stage,
        "params": params,
        "inputs": [input_digest(i) for i in inputs],
        "code": code_digest(),
    }
    return hashlib.sha256(dumps_json(payload).encode()).hexdigest()


def cache_root() -> Path | None:
    value = os.environ.get("LUSYNTH_STAGE_CACHE", "")
    if value.lower() == "off":
        return None
    return Path(value) if value else Path.home() / ".cache" / "lusynth" / "stages"


# large write-once outputs are shared by hard link; everything else (JSON, CSV, a local MLflow
# SQLite file that a later run may append to) is copied so no in-place write reaches the cache
_LINKED_SUFFIXES = frozenset({".npy", ".pt", ".onnx"})


def link_tree(src: Path, dst: Path) -> None:
    """Recreate ``src`` under ``dst``: large write-once files hard-linked, the rest copied."""
    for q in sorted(src.rglob("*")):
        target = dst / q.relative_to(src)
        if q.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if q.suffix in _LINKED_SUFFIXES:
            try:
                os.link(q, target)
                continue
            except OSError:
                pass
        shutil.copy2(q, target)


def run_cached(
    stage: str,
    out: str | os.PathLike[str],
    *,
    params: Mapping[str, Any],
    inputs: Sequence[str | os.PathLike[str]] = (),
    run: Callable[[Path], T],
    enabled: bool = True,
    code: Sequence[str] = (),
) -> tuple[T | None, bool]:
    """Restore ``out`` from the cache, or call ``run(out)`` and store the result.

    Returns (what ``run`` returned or None on a hit, whether it was a hit). ``run`` must write
    ``out`` completely (stages write atomically); the key file is added afterwards, so a
    downstream stage can chain on it even when this one ran uncached (``enabled=False``).
    """
    out = Path(out)
    key = stage_key(stage, params, inputs, code=code)
    root = cache_root() if enabled else None
    entry = root / stage / key if root else None
    if entry is not None and (entry / STAGE_FILE).is_file():
        with atomic_dir(out) as tmp:
            link_tree(entry, tmp)
        return None, True
    result = run(out)
    (out / STAGE_FILE).write_text(dumps_json({"stage": stage, "key": key}))
    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with atomic_dir(entry) as tmp:
            link_tree(out, tmp)
    return result, False
