"""The manifest protocol: a directory on S3 exists for readers only once its manifest does.

A directory uploaded to ``s3://bucket/prefix`` is its files under ``<prefix>/`` and, written after
all of them, ``<prefix>/_lusynth_manifest.json``::

    {"schema": 1, "kind": "lusynth.s3-dir",
     "files": [{"path": "<path below the prefix, posix>", "size": <bytes>, "sha256": "<hex>"}, ...],
     "total_bytes": <sum of the sizes>, "digest": "<SHA-256 over 'path\\0size\\0sha256\\n' per file>"}

No manifest means the upload never finished (:class:`IncompleteUpload`); a reader checks every
file's size and SHA-256 against it. The order of writes is :func:`lusynth.storage.upload.upload_dir`'s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from lusynth.storage.client import AttemptLog, IncompleteUpload, StorageError, TransferOptions, boto_errors, connect, describe, endpoint_of
from lusynth.storage.uri import parse_s3_uri, prefix_of

MANIFEST_NAME = "_lusynth_manifest.json"
MANIFEST_SCHEMA = 1
MANIFEST_KIND = "lusynth.s3-dir"


def manifest_digest(files: Sequence[dict[str, Any]]) -> str:
    """The digest of a manifest's file entries: one SHA-256 over every path, size and SHA-256."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f['path']}\0{f['size']}\0{f['sha256']}\n".encode())
    return h.hexdigest()


def manifest_document(entries: Sequence[dict[str, Any]], total_bytes: int) -> dict[str, Any]:
    """The manifest listing ``entries`` (``{"path", "size", "sha256"}`` each, in upload order)."""
    return {
        "schema": MANIFEST_SCHEMA,
        "kind": MANIFEST_KIND,
        "files": list(entries),
        "total_bytes": total_bytes,
        "digest": manifest_digest(entries),
    }


def read_manifest(uri: str, *, options: TransferOptions | None = None) -> dict[str, Any]:
    """The manifest of an uploaded directory; StorageError when the upload is incomplete."""
    opts = options or TransferOptions.from_env()
    loc = parse_s3_uri(uri)
    s3, attempts = connect(opts)
    return get_manifest(s3, attempts, loc.bucket, prefix_of(loc), uri)


def get_manifest(s3: Any, attempts: AttemptLog, bucket: str, prefix: str, uri: str) -> dict[str, Any]:
    """The manifest under ``prefix``, checked: IncompleteUpload when there is none, StorageError
    when it is not a manifest this lusynth reads or a file entry would leave the prefix."""
    from botocore.exceptions import ClientError

    key = prefix + MANIFEST_NAME
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise IncompleteUpload(
                f"{uri} at {endpoint_of(s3)}: incomplete upload: no manifest ({key}); re-run the upload"
            ) from None
        raise describe(exc, f"read of s3://{bucket}/{key}", s3, attempts=attempts.max_attempts_seen) from None
    except boto_errors() as exc:
        raise describe(exc, f"read of s3://{bucket}/{key}", s3, attempts=attempts.max_attempts_seen) from None
    try:
        manifest = json.loads(body)
        files = manifest["files"]
        schema = manifest["schema"]
    except (ValueError, KeyError, TypeError):
        raise StorageError(f"s3://{bucket}/{key}: not a lusynth upload manifest; re-run the upload") from None
    if schema != MANIFEST_SCHEMA:
        raise StorageError(f"s3://{bucket}/{key}: manifest schema {schema!r}, this lusynth reads {MANIFEST_SCHEMA}; upgrade lusynth")
    for f in files:
        parts = PurePosixPath(str(f.get("path", ""))).parts
        if not parts or ".." in parts or PurePosixPath(f["path"]).is_absolute():
            raise StorageError(f"s3://{bucket}/{key}: file entry {f.get('path')!r} escapes the prefix; refusing it")
    return manifest
