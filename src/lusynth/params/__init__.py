"""Parameters: one dataclass per profile section, filled from a profile in ``profiles.yaml``.

This is the one parameter source. Each stage module owns its dataclass (``GanParams`` in
:mod:`lusynth.gan.params`, ...); a field's default is the ``demo`` value and its trailing comment
is its help text. Profiles (the YAML's top-level names: ``demo``, ``paper``, ``tiny``) override
fields per section; a run's overrides (CLI flags, ``--set section.key=value``, a params file,
KFP's ``overrides`` parameter) go on top. The CLI flags, the KFP pipeline and DVC all resolve
through :func:`resolve`, and runs record the resolved values (:func:`flat_params`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import io
import os
import tokenize
import types
import typing
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lusynth.errors import InputError

T = TypeVar("T")

#: profile section -> "module:Class" of its parameter dataclass
SECTIONS: dict[str, str] = {
    "phantom": "lusynth.data.phantom:PhantomParams",
    "ingest": "lusynth.data.ingest:IngestParams",
    "experiment": "lusynth.experiment:ExperimentParams",
    "gan": "lusynth.gan.params:GanParams",
    "generate": "lusynth.gan.params:GenerateParams",
    "near_copy": "lusynth.metrics.nearcopy:NearCopyPolicy",
    "classifier": "lusynth.classifier.params:ClassifierParams",
    "evaluate": "lusynth.evaluate.params:EvaluateParams",
    "export": "lusynth.export.params:ExportParams",
    "audit": "lusynth.privacy.params:AuditParams",
}

Overrides = Mapping[str, Mapping[str, Any]]


def section_class(section: str) -> type:
    """The dataclass behind a profile section."""
    try:
        mod, cls = SECTIONS[section].split(":")
    except KeyError:
        raise InputError(f"unknown parameter section {section!r}; known: {', '.join(SECTIONS)}") from None
    return getattr(importlib.import_module(mod), cls)


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` (from YAML, a flag or a KFP parameter) as type ``tp``; strings are parsed."""
    origin = typing.get_origin(tp)
    if value is None:
        return None
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else Any
        if isinstance(value, str):
            value = _split_list(value)
        elif not isinstance(value, (list, tuple)):
            value = [value]
        out = [_coerce(inner, v, where) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(value, str) and value.lower() in ("none", "null"):
            return None
        return _coerce(args[0], value, where) if len(args) == 1 else value
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise InputError(f"{where}: expected true or false, got {value!r}")
        if tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return float(value)
        if tp is int and isinstance(value, (int, str)) and not isinstance(value, bool):
            return int(value)
        if tp is int and isinstance(value, float) and value.is_integer():
            return int(value)
    except ValueError:
        raise InputError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "parameters") -> T:
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


@functools.lru_cache(maxsize=8)
def _read_profiles(path: str | None) -> dict[str, Any]:
    if path is None:
        text = resources.files("lusynth").joinpath("profiles.yaml").read_text()
        where = "lusynth/profiles.yaml"
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: profiles file not found")
        text, where = p.read_text(), str(p)
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise InputError(f"{where}: expected a top-level 'profiles:' mapping")
    for name, body in data["profiles"].items():
        unknown = sorted(set(body or {}) - set(SECTIONS))
        if unknown:
            raise InputError(f"{where}: profile {name!r} has unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    return dict(data["profiles"])


def load_profiles(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read the profiles file (default: the one shipped in the package)."""
    return _read_profiles(None if path is None else str(path))


def profile_names(path: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """The profiles the YAML defines, in file order."""
    return tuple(load_profiles(path))


def _profile(profile: str, profiles_file: str | os.PathLike[str] | None) -> dict[str, Any]:
    profiles = load_profiles(profiles_file)
    if profile not in profiles:
        raise InputError(f"unknown profile {profile!r}; available: {', '.join(profiles)}")
    return profiles[profile] or {}


def stage_params(
    section: str,
    profile: str = "demo",
    overrides: Mapping[str, Any] | None = None,
    *,
    profiles_file: str | os.PathLike[str] | None = None,
) -> Any:
    """The dataclass of ``section`` for ``profile``, with ``overrides`` (e.g. from CLI flags) on top."""
    values = dict(_profile(profile, profiles_file).get(section) or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(section_class(section), values, where=f"profile {profile}, section {section}")


def resolve(
    sections: Iterable[str],
    profile: str = "demo",
    overrides: Overrides | None = None,
    *,
    profiles_file: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """``{section: dataclass}`` for ``profile`` with per-section ``overrides`` applied; every
    value is checked here, so a bad one fails before any work starts."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(SECTIONS))
    if unknown:
        raise InputError(f"unknown parameter section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    return {s: stage_params(s, profile, overrides.get(s), profiles_file=profiles_file) for s in sections}


def parse_assignments(assignments: Iterable[str], *, flag: str = "--set") -> dict[str, dict[str, Any]]:
    """``["gan.epochs=5", "experiment.fractions=0.5,1"]`` -> ``{"gan": {"epochs": "5"}, ...}``
    (values stay strings; :func:`from_dict` parses them by the field's type)."""
    out: dict[str, dict[str, Any]] = {}
    for a in assignments:
        key, sep, value = a.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise InputError(f"{flag} {a!r}: write SECTION.KEY=VALUE, e.g. {flag} gan.epochs=5 (sections: {', '.join(SECTIONS)})")
        if section not in SECTIONS:
            raise InputError(f"{flag} {a!r}: unknown section {section!r}; known: {', '.join(SECTIONS)}")
        names = {f.name for f in dataclasses.fields(section_class(section))}
        if name not in names:
            raise InputError(f"{flag} {a!r}: {section} has no parameter {name!r}; valid: {', '.join(sorted(names))}")
        out.setdefault(section, {})[name] = value.strip()
    return out


def read_params_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The per-section overrides in a YAML file (DVC's params.yaml): top-level keys that name a
    section; other keys (``profile``, ``source`` ...) are the driver's and are ignored here."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: params file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{p}: not valid YAML ({exc})") from None
    out = {}
    for section, values in data.items():
        if section in SECTIONS:
            if values is not None and not isinstance(values, dict):
                raise InputError(f"{p}: section {section!r} must be a mapping of parameter: value")
            out[section] = dict(values or {})
    return out


def merge_overrides(*layers: Overrides | None) -> dict[str, dict[str, Any]]:
    """Per-section overrides, later layers winning key by key; None values are dropped."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in (layer or {}).items():
            for k, v in (values or {}).items():
                if v is not None:
                    out.setdefault(section, {})[k] = v
    return out


def as_dict(params: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (tuples as lists) for JSON headers and MLflow params."""

    def conv(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {k: conv(v) for k, v in dataclasses.asdict(params).items()}


def flat_params(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """``{"gan.epochs": 100, ...}`` from :func:`resolve`'s result: what a run records."""
    return {f"{s}.{k}": v for s, p in resolved.items() for k, v in as_dict(p).items()}


@functools.cache
def field_help(cls: type) -> dict[str, str]:
    """Help text per field of dataclass ``cls``: ``metadata['help']`` if given, else the comment
    that ends the field's line in the source (the house style documents fields that way)."""
    helps: dict[str, str] = {}
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        source = ""
    names = {f.name for f in dataclasses.fields(cls)}
    line_field: dict[int, str] = {}
    above: list[str] = []  # a comment block on the lines just above a field documents it too
    for tok in tokenize.generate_tokens(io.StringIO(source).readline) if source else ():
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names and tok.start[0] not in line_field:
            line_field[tok.start[0]] = tok.string
            if above:
                helps[tok.string] = " ".join(above)
            above = []
        elif tok.type == tokenize.COMMENT and tok.start[0] in line_field:
            helps[line_field[tok.start[0]]] = tok.string.lstrip("#").strip()
        elif tok.type == tokenize.COMMENT and tok.start[1] == 4:
            above.append(tok.string.lstrip("#").strip())
        elif tok.type == tokenize.NAME and tok.start[1] == 4:
            above = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("help"):
            helps[f.name] = str(f.metadata["help"])
    return helps


def field_choices(cls: type) -> dict[str, tuple[Any, ...]]:
    """Allowed values per field where the dataclass states them: its ``CHOICES`` class attribute
    (``{"field": (allowed, ...)}``) or a field's ``metadata['choices']``."""
    out = {name: tuple(v) for name, v in (getattr(cls, "CHOICES", None) or {}).items()}
    out.update({f.name: tuple(f.metadata["choices"]) for f in dataclasses.fields(cls) if f.metadata.get("choices")})
    return out


def check_choices(params: Any, section: str) -> None:
    """Every enumerated field of ``params`` (:func:`field_choices`) holds an allowed value."""
    for name, allowed in field_choices(type(params)).items():
        check_choice(section, name, getattr(params, name), allowed)


def param(default: Any, help: str = "", *, choices: Iterable[Any] | None = None) -> Any:  # noqa: A002 - the CLI's word
    """A dataclass field with CLI metadata: ``x: str = param("a", "what x is", choices=("a", "b"))``."""
    meta: dict[str, Any] = {"help": help} if help else {}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_choice(section: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    """The one validation style of every parameter class: a ValueError naming section.field, the
    value and what to give instead (:func:`from_dict` turns it into an InputError)."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{section}.{name}={value!r}: choose one of {', '.join(map(str, choices))}")


def check(ok: bool, section: str, name: str, value: Any, why: str) -> None:
    """Raise ``ValueError("section.name=value: why")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{section}.{name}={value!r}: {why}")
