"""S3 through boto3: retries from botocore's config, transfers through the transfer manager.

The endpoint comes from ``LUSYNTH_S3_ENDPOINT_URL`` (or the standard ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``), so the same code talks to AWS, MinIO, SeaweedFS or moto. Credentials come
from the standard AWS chain (env, profile, IRSA); they are never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lusynth.errors import InputError, LusynthError


class StorageError(LusynthError):
    """An S3 request failed; the message names the endpoint and the key, never a secret."""


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


def endpoint_url() -> str | None:
    for var in ("LUSYNTH_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var]
    return None


def client(*, max_attempts: int = 5, connect_timeout: float = 5.0, read_timeout: float = 60.0) -> Any:
    """A boto3 S3 client with botocore's standard retry mode (exponential backoff, jitter)."""
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        s3={"addressing_style": "path"},
        signature_version="s3v4",
    )
    return boto3.client("s3", endpoint_url=endpoint_url(), config=cfg, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def _describe(exc: Exception, what: str) -> StorageError:
    ep = endpoint_url() or "AWS S3"
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    hint = ""
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
        hint = "; check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the mounted secret)"
    elif code in ("NoSuchBucket", "404"):
        hint = "; check the bucket name"
    return StorageError(f"S3 {what} at {ep} failed: {code or type(exc).__name__}{hint}")


def download_prefix(uri: str, dest: str | os.PathLike[str], *, progress: bool = False) -> list[Path]:
    """Download every object under an ``s3://bucket/prefix`` into ``dest`` (keys relative to the prefix)."""
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    loc = parse_s3_uri(uri)
    prefix = loc.key if (not loc.key or loc.key.endswith("/")) else loc.key + "/"
    s3 = client()
    dest = Path(dest)
    out: list[Path] = []
    cfg = TransferConfig(max_concurrency=4)
    try:
        keys = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if not obj["Key"].endswith("/")
        ]
        if not keys:
            raise InputError(f"{uri}: no objects under this prefix; check the URI")
        for key in sorted(keys):
            rel = key[len(prefix) :]
            if ".." in Path(rel).parts:
                raise InputError(f"{uri}: object key {key!r} escapes the prefix; refusing to download it")
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(loc.bucket, key, str(target), Config=cfg)
            out.append(target)
    except (ClientError, BotoCoreError) as exc:
        raise _describe(exc, f"download of {uri}") from None
    return out
