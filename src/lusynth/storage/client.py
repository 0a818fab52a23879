"""Talking to S3: the boto3 client (endpoint, credentials, botocore's retries), the transfer
options, and errors that name the endpoint and the key but never a secret.

The endpoint comes from ``LUSYNTH_S3_ENDPOINT_URL`` (or the standard ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``); credentials from the standard AWS chain (env, profile, IRSA).
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

from lusynth.errors import InputError, LusynthError

_MiB = 1024 * 1024
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "403"}


class StorageError(LusynthError):
    """An S3 request failed; the message names the endpoint and the key, never a secret."""


class IncompleteUpload(StorageError):
    """The prefix has no manifest: nothing was uploaded there, or an upload never finished."""


@dataclass(frozen=True)
class TransferOptions:
    """How hard and how wide a transfer pushes; defaults suit a laptop and a cluster alike.

    ``LUSYNTH_S3_MAX_ATTEMPTS`` and ``LUSYNTH_S3_MULTIPART_THRESHOLD_MB`` override the defaults
    through :meth:`from_env`.
    """

    max_attempts: int = 5  # botocore "standard" mode: exponential backoff with jitter
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    multipart_threshold: int = 64 * _MiB  # files at least this big go up in parts
    multipart_chunksize: int = 16 * _MiB  # S3 needs >= 5 MiB per part (except the last)
    max_concurrency: int = 4  # threads per transfer; the machine may have 2 cores
    server_checksums: bool = True  # ask S3 to verify a SHA-256 of every PUT (falls back if unsupported)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InputError(f"TransferOptions.max_attempts={self.max_attempts}: must be >= 1")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise InputError("TransferOptions: connect_timeout and read_timeout must be > 0 seconds")
        if self.multipart_chunksize < 5 * _MiB:
            raise InputError(f"TransferOptions.multipart_chunksize={self.multipart_chunksize}: S3 needs parts of at least 5 MiB")
        if self.multipart_threshold < 1 or self.max_concurrency < 1:
            raise InputError("TransferOptions: multipart_threshold and max_concurrency must be >= 1")

    @classmethod
    def from_env(cls) -> TransferOptions:
        """Defaults, overridden by ``LUSYNTH_S3_MAX_ATTEMPTS`` / ``LUSYNTH_S3_MULTIPART_THRESHOLD_MB``."""
        kwargs: dict[str, Any] = {}
        try:
            if os.environ.get("LUSYNTH_S3_MAX_ATTEMPTS"):
                kwargs["max_attempts"] = int(os.environ["LUSYNTH_S3_MAX_ATTEMPTS"])
            if os.environ.get("LUSYNTH_S3_MULTIPART_THRESHOLD_MB"):
                kwargs["multipart_threshold"] = int(float(os.environ["LUSYNTH_S3_MULTIPART_THRESHOLD_MB"]) * _MiB)
        except ValueError as exc:
            raise InputError(f"LUSYNTH_S3_MAX_ATTEMPTS / LUSYNTH_S3_MULTIPART_THRESHOLD_MB must be numbers ({exc})") from None
        return cls(**kwargs)

    def transfer_config(self) -> Any:
        """The boto3 transfer manager's config for these options."""
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
            use_threads=True,
        )


def endpoint_url() -> str | None:
    """The S3 endpoint from the environment; None means AWS itself."""
    for var in ("LUSYNTH_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var]
    return None


def client(
    *,
    max_attempts: int = 5,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    endpoint: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    checksums: bool = True,
) -> Any:
    """A boto3 S3 client with botocore's standard retry mode (exponential backoff, jitter).

    ``endpoint`` and the keys default to the environment (see :func:`endpoint_url`, the AWS chain).
    ``checksums=False`` sends no flexible checksum unless an operation requires one, for servers
    that reject them (botocore and the transfer manager add a CRC32 by default).
    """
    from botocore.config import Config

    cfg = Config(
        retries={"total_max_attempts": max_attempts, "mode": "standard"},  # attempts including the first
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        request_checksum_calculation="when_supported" if checksums else "when_required",
        response_checksum_validation="when_supported" if checksums else "when_required",
    )
    # Keys from the environment are passed explicitly: boto3's session caches the credentials it
    # first resolved, so a rotated secret (or a test's environment) would otherwise be ignored.
    if access_key_id is None and os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        access_key_id = os.environ["AWS_ACCESS_KEY_ID"]
        secret_access_key = os.environ["AWS_SECRET_ACCESS_KEY"]
        session_token = os.environ.get("AWS_SESSION_TOKEN")
    else:
        session_token = None
    with _SESSION_LOCK:  # creating clients from one session is not thread-safe
        return _session().client(
            "s3",
            endpoint_url=endpoint or endpoint_url(),
            config=cfg,
            region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
        )


_SESSION_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _session() -> Any:
    """One boto3 session per process: it loads the service models once (a new one costs ~0.3 s)."""
    import boto3

    return boto3.session.Session()


def endpoint_of(s3: Any | None) -> str:
    """The endpoint ``s3`` talks to (the environment's when None), for error messages."""
    if s3 is not None:
        return str(s3.meta.endpoint_url)
    return endpoint_url() or "AWS S3"


def _scrub(text: str) -> str:
    """Defence in depth: blank any secret from the environment that a server might echo back."""
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        secret = os.environ.get(var)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore error (``NoSuchBucket``, ``403``...); None for a network error."""
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def describe(exc: BaseException, what: str, s3: Any | None = None, *, attempts: int | None = None) -> StorageError:
    """A StorageError naming the endpoint and what failed (``what`` names the key), with a hint."""
    ep = endpoint_of(s3)
    code = error_code(exc)
    hint = ""
    if code in _AUTH_CODES:
        hint = "; check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the mounted secret) for this endpoint"
    elif code in ("NoSuchBucket", "404"):
        hint = "; check the bucket name"
    elif code is None:
        hint = "; check that the S3 server is running and that LUSYNTH_S3_ENDPOINT_URL points at it"
    tries = f" after {attempts} attempts" if attempts and attempts > 1 else ""
    reason = code or f"{type(exc).__name__}: {exc}"
    return StorageError(_scrub(f"S3 {what} at {ep} failed{tries}: {reason}{hint}"))


def boto_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a boto3 call raises for a failed request (imported lazily: boto3 is slow to import)."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, S3UploadFailedError)


class AttemptLog:
    """Counts botocore's attempts per failing request, so an error can say how often it retried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.max_attempts_seen = 0

    def __call__(self, attempts: int = 0, response: Any = None, caught_exception: Any = None, **_: Any) -> None:
        failed = caught_exception is not None or (response is not None and response[0].status_code >= 500)
        if failed:
            with self._lock:
                self.max_attempts_seen = max(self.max_attempts_seen, int(attempts))


def connect(opts: TransferOptions, *, checksums: bool = True) -> tuple[Any, AttemptLog]:
    """A client for ``opts`` and the log of its failed attempts."""
    s3 = client(
        max_attempts=opts.max_attempts, connect_timeout=opts.connect_timeout, read_timeout=opts.read_timeout, checksums=checksums
    )
    log = AttemptLog()
    # 'needs-retry' fires once per attempt with the attempt number; the handler only records it.
    s3.meta.events.register("needs-retry.s3", log)
    return s3, log


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, in S3's (lexicographic) order."""
    return [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
