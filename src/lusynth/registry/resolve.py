"""Serving's model resolution: a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI turned into
a local ONNX file plus the sha256 the registry recorded for it (the server checks it before loading)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from lusynth.errors import InputError
from lusynth.registry.client import TAG, download_onnx, find_version

__all__ = ["ResolvedModel", "resolve_model"]


@dataclass
class ResolvedModel:
    """A registry model (or a plain file) ready to load, with the hash it must have."""

    path: Path
    expected_sha256: str | None
    source: str
    name: str | None = None
    version: str | None = None


def resolve_model(uri: str, dst: str | os.PathLike[str], *, local_dir: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """``models:/NAME@alias`` or ``models:/NAME/VERSION`` -> downloaded ONNX file + the registry's sha256."""
    from lusynth.tracking import mlflow_client

    m = re.fullmatch(r"models:/([^@/]+)(?:@([A-Za-z0-9_-]+)|/(\d+))", uri)
    if not m:
        raise InputError(f"{uri!r}: use models:/NAME@ALIAS, models:/NAME/VERSION or a path to an .onnx file")
    name, alias, version = m.groups()
    client = mlflow_client(local_dir)
    mv = find_version(client, name, alias=alias, version=version, source=uri)
    path = download_onnx(client, name, str(mv.version), dst)
    return ResolvedModel(path=path, expected_sha256=mv.tags.get(TAG + "onnx_sha256"), source=uri, name=name,
                         version=str(mv.version))
