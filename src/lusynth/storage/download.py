"""Downloading: a directory written by :func:`~lusynth.storage.upload.upload_dir` (checked
against its manifest), or a raw folder of objects (ingest's ``s3://`` sources)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lusynth.atomic import atomic_dir
from lusynth.errors import InputError
from lusynth.storage.client import StorageError, TransferOptions, boto_errors, connect, describe, endpoint_of, list_keys
from lusynth.storage.manifest import get_manifest
from lusynth.storage.transfer import progress_bar, subscribers, transfer_manager
from lusynth.storage.uri import parse_s3_uri, prefix_of, relative_key
from lusynth.util import file_sha256


def download_prefix(uri: str, dest: str | os.PathLike[str], *, progress: bool = False) -> list[Path]:
    """Download every object under an ``s3://bucket/prefix`` into ``dest`` (keys relative to the prefix).

    For raw user folders (no manifest); lusynth's own outputs go through :func:`download_dir`.
    A key that would land outside ``dest`` (``//``, a leading ``/``, ``..``, a backslash below
    the prefix) refuses the whole download with an :class:`InputError` before anything is written.
    """
    loc = parse_s3_uri(uri)
    prefix = prefix_of(loc)
    opts = TransferOptions.from_env()
    s3, attempts = connect(opts)
    dest = Path(dest)
    out: list[Path] = []
    key = prefix
    try:
        keys = [k for k in list_keys(s3, loc.bucket, prefix) if not k.endswith("/")]
        if not keys:
            raise InputError(f"{uri}: no objects under this prefix; check the URI")
        # Every key is checked before the first file lands: a hostile key leaves nothing half-written.
        targets = [(k, dest / relative_key(k, prefix, uri=uri)) for k in sorted(keys)]
        with progress_bar(progress, f"download {uri}", len(targets), unit="files") as advance:
            for key, target in targets:
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(loc.bucket, key, str(target), Config=opts.transfer_config())
                out.append(target)
                advance(1)
    except boto_errors() as exc:
        raise describe(exc, f"download of s3://{loc.bucket}/{key}", s3, attempts=attempts.max_attempts_seen) from None
    return out


def download_dir(
    uri: str,
    local_dir: str | os.PathLike[str],
    *,
    progress: bool = False,
    options: TransferOptions | None = None,
) -> dict[str, Any]:
    """Download a directory written by :func:`upload_dir`; every file's size and SHA-256 is checked.

    A prefix without a manifest is refused (the upload never finished). The files land in a
    temporary sibling of ``local_dir`` that replaces it only when all checks pass, so a mismatch
    leaves no downloaded directory behind. Returns the manifest.
    """
    opts = options or TransferOptions.from_env()
    loc = parse_s3_uri(uri)
    prefix = prefix_of(loc)
    s3, attempts = connect(opts)
    manifest = get_manifest(s3, attempts, loc.bucket, prefix, uri)
    files = manifest["files"]
    total = int(sum(int(f["size"]) for f in files))
    current = uri
    try:
        with atomic_dir(local_dir) as tmp, progress_bar(progress, f"download {uri}", total) as advance:
            subs = subscribers(advance, progress)
            with transfer_manager(s3, opts) as tm:
                futures = []
                for f in files:
                    target = tmp / f["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    futures.append((f, tm.download(loc.bucket, prefix + f["path"], str(target), subscribers=subs)))
                for f, fut in futures:
                    current = f"s3://{loc.bucket}/{prefix + f['path']}"
                    fut.result()
            # Parts of a large object arrive out of order, so the hash is taken from the file.
            for f in files:
                target = tmp / f["path"]
                key_uri = f"s3://{loc.bucket}/{prefix + f['path']}"
                size = target.stat().st_size
                if size != int(f["size"]):
                    raise StorageError(f"{key_uri} at {endpoint_of(s3)}: {size} bytes, the manifest says {f['size']}; re-run the upload")
                digest = file_sha256(target)
                if digest != f["sha256"]:
                    raise StorageError(
                        f"{key_uri} at {endpoint_of(s3)}: checksum mismatch (SHA-256 {digest[:12]}..., manifest "
                        f"{str(f['sha256'])[:12]}...); the object changed after the upload: re-run the upload"
                    )
    except boto_errors() as exc:
        raise describe(exc, f"download of {current}", s3, attempts=attempts.max_attempts_seen) from None
    return manifest
