"""Content-addressed stage outputs: the same inputs, parameters and code give the same output, so
a stage whose key was computed before is restored from the cache instead of rerun.

Why our own cache and not only the engine's: KFP's local cache keys ignore edits to the imported
project code (stale hits) and a cluster's cache does not help the CLI; DVC has its own. A stage key
is a SHA-256 over the stage name, its parameters, the digests of its inputs and the digest of the
code the stage runs, so a changed parameter or a code change reruns exactly what depends on it.

The code digest (:func:`code_digest`) covers the modules a stage names (``code=("lusynth.gan.train",)``)
and every ``lusynth`` module they import, transitively, with the ``__init__.py`` of each package on
the way, plus ``lusynth/profiles.yaml``. Imports are found statically (:mod:`ast`, every
``import``/``from`` statement at any depth, so also those inside functions), so nothing is imported to
compute a key, and an edit to a module the stage never imports (the CLI, another stage) keeps its
cached output valid. A stage that names no modules is keyed on the whole ``lusynth`` package.

Each output directory carries ``.lusynth-stage.json`` with its key; a downstream stage uses that
key as the digest of the input (cheap, and it chains: a changed upstream key changes every key
below it). Frame stores without the file contribute their ``content_digest``.

The cache lives in ``LUSYNTH_STAGE_CACHE`` (default ``~/.cache/lusynth/stages``; ``off`` disables
it). Entries are written atomically; outputs are restored by hard link (copy across devices).
"""

from __future__ import annotations

import ast
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


PACKAGE = "lusynth"
# shipped with the code and read by every stage's parameters (lusynth.params), so always digested
_ALWAYS = ("profiles.yaml",)


def _root() -> Path:
    return Path(str(resources.files(PACKAGE)))


def _source(module: str) -> Path | None:
    """The source file of a ``lusynth`` module (``a/b.py`` or ``a/b/__init__.py``), None if there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = _root().joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imported(module: str, path: Path) -> set[str]:
    """The ``lusynth`` modules that ``module`` (source at ``path``) imports anywhere in its body.

    ``from lusynth.a import b`` names ``lusynth.a`` and, when ``b`` is a module, ``lusynth.a.b``;
    relative imports are resolved against ``module``'s package.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: level 1 is module's own package, each further dot one up
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if _source(name) is not None}


def _parents(module: str) -> list[str]:
    """The packages on the way to ``module``: importing it runs each one's ``__init__.py``."""
    parts = module.split(".")
    return [name for i in range(1, len(parts)) if _source(name := ".".join(parts[:i])) is not None]


@functools.cache
def _closure(modules: tuple[str, ...]) -> tuple[str, ...]:
    for module in modules:
        if _source(module) is None:
            raise ValueError(f"stage code {module!r}: no such module under {_root()}; name a lusynth module, e.g. 'lusynth.gan.train'")
    todo = list(modules)
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        path = _source(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        todo += [m for m in (*_parents(module), *_imported(module, path)) if m not in seen]
    return tuple(sorted(seen))


def code_closure(*modules: str) -> tuple[str, ...]:
    """The ``lusynth`` modules that running ``modules`` can execute: themselves, every ``lusynth``
    module they import (transitively, found statically) and the packages on the way; sorted."""
    return _closure(tuple(sorted(set(modules))))


@functools.cache
def _digest(modules: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    root = _root()
    if modules:
        files = sorted({*(root / name for name in _ALWAYS), *(p for m in _closure(modules) if (p := _source(m)))})
    else:  # the whole package, as before stages named their modules
        files = [p for p in sorted(root.rglob("*")) if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts]
    for p in files:
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def code_digest(*modules: str) -> str:
    """SHA-256 over the sources of ``modules`` (dotted names, e.g. ``"lusynth.gan.train"``), of every
    ``lusynth`` module they import (:func:`code_closure`) and of ``lusynth/profiles.yaml``.

    With no modules: over every Python source and profile of the lusynth package. Computed once
    per module set in a process (sources are not expected to change under a running pipeline).
    """
    return _digest(tuple(sorted(set(modules))))


def input_digest(path: str | os.PathLike[str]) -> str:
    """Digest of a stage input: its stage key, else a frame store's content digest, else its bytes."""
    p = Path(path)
    marker = p / STAGE_FILE
    if marker.is_file():
        try:
            key = json.loads(marker.read_text()).get("key")
        except (OSError, ValueError, AttributeError):
            key = None
        if isinstance(key, str):  # a cached stage output; a side output's marker (lusynth.outputs.mark_output) has no key
            return "stage:" + key
    from lusynth.data.framestore import content_digest_of

    digest = content_digest_of(p)
    if digest:
        return digest
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    for q in files:
        # the name's own bytes: a file name that is not UTF-8 must not crash the key (issue 15)
        h.update(os.fsencode(q.relative_to(p).as_posix()) if q != p else b"")
        with open(q, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def stage_key(
    stage: str,
    params: Mapping[str, Any],
    inputs: Sequence[str | os.PathLike[str]] = (),
    *,
    code: Sequence[str] = (),
) -> str:
    """The cache key of one stage run; ``code``: the modules the stage runs (:func:`code_digest`;
    empty: the whole lusynth package)."""
    payload = {
        "stage": stage,
        "params": params,
        "inputs": [input_digest(i) for i in inputs],
        "code": code_digest(*code),
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
    downstream stage can chain on it even when this one ran uncached (``enabled=False``). ``code``
    names the modules ``run`` executes (the key's code digest, :func:`stage_key`).
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
