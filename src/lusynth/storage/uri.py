"""``s3://bucket/prefix`` locations: parsing, the prefix every key of a directory shares, and the
local path an object key may be written to (never outside the destination)."""

from __future__ import annotations

from dataclasses import dataclass

from lusynth.errors import InputError


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Uri:
    """``s3://bucket/prefix`` -> S3Uri; a clear error for anything else."""
    if not uri.startswith("s3://"):
        raise InputError(f"{uri!r} is not an s3:// URI (expected s3://bucket/prefix)")
    rest = uri[5:]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InputError(f"{uri!r} has no bucket name (expected s3://bucket/prefix)")
    return S3Uri(bucket, key)


def prefix_of(loc: S3Uri) -> str:
    """The key prefix of a directory at ``loc``: its key without slashes at either end, plus one
    ``/``; empty for the bucket's root."""
    key = loc.key.strip("/")
    return key + "/" if key else ""


def relative_key(key: str, prefix: str, *, uri: str) -> str:
    """``key`` relative to ``prefix``, as a path that stays inside any destination directory.

    S3 keys are free text: ``data//tmp/x`` under ``data/`` is ``/tmp/x``, which a join would turn
    into an absolute path. A key whose remainder is empty, starts with ``/``, has an empty (``//``)
    or ``..`` component, or holds a backslash (a separator on Windows) is refused with an
    :class:`InputError` naming the key and the prefix (``uri`` is the location the user gave).
    """
    if not key.startswith(prefix):
        raise InputError(f"{uri}: object key {key!r} is not under the prefix {prefix!r}; refusing to download it")
    rel = key[len(prefix) :]
    parts = rel.split("/")
    if "\\" in rel or "" in parts or ".." in parts:
        raise InputError(
            f"{uri}: object key {key!r} escapes the prefix {prefix!r} (below it, {rel!r} has an empty, '..' or "
            "absolute path component, or a backslash); refusing to download anything: rename or delete that object"
        )
    return rel
