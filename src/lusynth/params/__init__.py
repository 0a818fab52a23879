"""Parameters: one dataclass per stage, filled from a profile in ``profiles.yaml``.

Each stage module owns its dataclass (``PhantomParams`` in :mod:`lusynth.data.phantom`, ...);
this module only maps profile sections onto them, so the CLI, the KFP components and DVC all
fill the same dataclasses from the same file. Profiles: ``demo`` (minutes on 2 CPU cores) and
``paper`` (the paper's settings, for a GPU).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lusynth.errors import InputError

T = TypeVar("T")

#: profile section -> "module:Class" of the stage's parameter dataclass
SECTIONS: dict[str, str] = {
    "phantom": "lusynth.data.phantom:PhantomParams",
    "ingest": "lusynth.data.ingest:IngestParams",
    "gan": "lusynth.gan.params:GanParams",
    "generate": "lusynth.gan.params:GenerateParams",
    "near_copy": "lusynth.metrics.nearcopy:NearCopyPolicy",
    "classifier": "lusynth.classifier.params:ClassifierParams",
    "evaluate": "lusynth.evaluate.params:EvaluateParams",
}
PROFILES = ("demo", "paper")


def section_class(section: str) -> type:
    """The dataclass behind a profile section."""
    try:
        mod, cls = SECTIONS[section].split(":")
    except KeyError:
        raise InputError(f"unknown parameter section {section!r}; known: {', '.join(SECTIONS)}") from None
    return getattr(importlib.import_module(mod), cls)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if value is None:
        return None
    if origin in (tuple, list):
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        if not isinstance(value, (list, tuple)):
            value = [value]
        out = [_coerce(inner, v, where) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if tp is float and isinstance(value, (int, float, str)):
        return float(value)
    if tp is int and isinstance(value, (int, str)) and not isinstance(value, bool):
        return int(value)
    if tp is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise InputError(f"{where}: expected true/false, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str = "parameters") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys with a clear message."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints.get(k, Any), v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from exc


def load_profiles(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read the profiles file (default: the one shipped in the package)."""
    if path is None:
        text = resources.files("lusynth").joinpath("profiles.yaml").read_text()
        where = "lusynth/profiles.yaml"
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: profiles file not found")
        text, where = p.read_text(), str(p)
    data = yaml.safe_load(text) or {}
    if "profiles" not in data:
        raise InputError(f"{where}: expected a top-level 'profiles:' mapping")
    return data["profiles"]


def stage_params(
    section: str,
    profile: str = "demo",
    overrides: dict[str, Any] | None = None,
    *,
    profiles_file: str | os.PathLike[str] | None = None,
) -> Any:
    """The dataclass of ``section`` for ``profile``, with ``overrides`` (e.g. from CLI flags) on top."""
    profiles = load_profiles(profiles_file)
    if profile not in profiles:
        raise InputError(f"unknown profile {profile!r}; available: {', '.join(profiles)}")
    values = dict((profiles[profile] or {}).get(section) or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(section_class(section), values, where=f"profile {profile}.{section}")


def as_dict(params: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (tuples as lists) for JSON headers and MLflow params."""
    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v

    return {k: conv(v) for k, v in dataclasses.asdict(params).items()}
