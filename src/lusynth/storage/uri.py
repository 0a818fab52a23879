"""``s3://bucket/prefix`` locations: parsing, and the prefix every key of a directory shares."""

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

