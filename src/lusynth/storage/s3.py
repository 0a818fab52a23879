"""S3 through boto3: retries from botocore's config, transfers through the transfer manager.

The endpoint comes from ``LUSYNTH_S3_ENDPOINT_URL`` (or the standard ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``), so the same code talks to AWS, MinIO, SeaweedFS or moto. Credentials come
from the standard AWS chain (env, profile, IRSA); they are never logged and never appear in an
error message (messages name the endpoint and the key instead).

Directories (frame stores, reports, model dirs) travel with :func:`upload_dir` /
:func:`download_dir`. A reader sees a directory only when it is complete: the objects go under
``<prefix>/`` and a manifest ``<prefix>/_lusynth_manifest.json`` (every file's size and SHA-256)
is written LAST; :func:`download_dir` refuses a prefix without one and checks every checksum.
Raw user folders (ingest's ``s3://`` sources) have no manifest: :func:`download_prefix` reads them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lusynth.atomic import atomic_dir, dumps_json
from lusynth.errors import InputError, LusynthError

MANIFEST_NAME = "_lusynth_manifest.json"
MANIFEST_SCHEMA = 1
_MiB = 1024 * 1024
_HASH_BLOCK = 1024 * 1024
# Error codes an S3-compatible server answers when it does not implement flexible checksums;
# on these the upload falls back to plain PUTs (the manifest's SHA-256 still guards the data).
_CHECKSUM_UNSUPPORTED = {"NotImplemented", "InvalidRequest", "InvalidArgument", "UnsupportedChecksumAlgorithm"}
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "403"}


class StorageError(LusynthError):
    """An S3 request failed; the message names the endpoint and the key, never a secret."""


class IncompleteUpload(StorageError):
    """The prefix has no manifest: nothing was uploaded there, or an upload never finished."""


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


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


def _endpoint_of(s3: Any | None) -> str:
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


def _describe(exc: BaseException, what: str, s3: Any | None = None, *, attempts: int | None = None) -> StorageError:
    """A StorageError naming the endpoint and what failed (``what`` names the key), with a hint."""
    ep = _endpoint_of(s3)
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
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


def _boto_errors() -> tuple[type[BaseException], ...]:
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, S3UploadFailedError)


class _AttemptLog:
    """Counts botocore's attempts per failing request, so an error can say how often it retried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.max_attempts_seen = 0

    def __call__(self, attempts: int = 0, response: Any = None, caught_exception: Any = None, **_: Any) -> None:
        failed = caught_exception is not None or (response is not None and response[0].status_code >= 500)
        if failed:
            with self._lock:
                self.max_attempts_seen = max(self.max_attempts_seen, int(attempts))


def _client_for(opts: TransferOptions, *, checksums: bool = True) -> tuple[Any, _AttemptLog]:
    s3 = client(
        max_attempts=opts.max_attempts, connect_timeout=opts.connect_timeout, read_timeout=opts.read_timeout, checksums=checksums
    )
    log = _AttemptLog()
    # 'needs-retry' fires once per attempt with the attempt number; the handler only records it.
    s3.meta.events.register("needs-retry.s3", log)
    return s3, log


def _prefix_of(loc: S3Uri) -> str:
    key = loc.key.strip("/")
    return key + "/" if key else ""


def _list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]


def download_prefix(uri: str, dest: str | os.PathLike[str], *, progress: bool = False) -> list[Path]:
    """Download every object under an ``s3://bucket/prefix`` into ``dest`` (keys relative to the prefix).

    For raw user folders (no manifest); lusynth's own outputs go through :func:`download_dir`.
    """
    loc = parse_s3_uri(uri)
    prefix = _prefix_of(loc)
    opts = TransferOptions.from_env()
    s3, attempts = _client_for(opts)
    dest = Path(dest)
    out: list[Path] = []
    key = prefix
    try:
        keys = [k for k in _list_keys(s3, loc.bucket, prefix) if not k.endswith("/")]
        if not keys:
            raise InputError(f"{uri}: no objects under this prefix; check the URI")
        with _progress_bar(progress, f"download {uri}", len(keys), unit="files") as advance:
            for key in sorted(keys):
                rel = key[len(prefix) :]
                if ".." in PurePosixPath(rel).parts:
                    raise InputError(f"{uri}: object key {key!r} escapes the prefix; refusing to download it")
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(loc.bucket, key, str(target), Config=opts.transfer_config())
                out.append(target)
                advance(1)
    except _boto_errors() as exc:
        raise _describe(exc, f"download of s3://{loc.bucket}/{key}", s3, attempts=attempts.max_attempts_seen) from None
    return out


# ---------------------------------------------------------------------------------------------
# directories with a manifest


class _HashingReader:
    """A read-only file wrapper that hashes bytes as the transfer manager streams them.

    botocore re-reads a body (checksums, retries) by seeking back, so only bytes beyond the
    high-water mark are hashed; were a read ever to skip ahead, the hash is marked unusable and
    :attr:`sha256` falls back to re-reading the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by the transfer manager via close()
        self._hash = hashlib.sha256()
        self._hashed_upto = 0
        self._gap = False

    def read(self, size: int = -1) -> bytes:
        pos = self._fh.tell()
        data = self._fh.read(size)
        end = pos + len(data)
        if pos > self._hashed_upto:
            self._gap = True
        elif end > self._hashed_upto:
            self._hash.update(data[self._hashed_upto - pos :])
            self._hashed_upto = end
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._fh.close()

    @property
    def sha256(self) -> str:
        size = self.path.stat().st_size
        if self._gap or self._hashed_upto != size:
            return file_sha256(self.path)
        return self._hash.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


# SHA-256 of local files by (device, inode, size, mtime_ns), for ``upload_dir(reuse_unchanged=True)``:
# re-uploads of a growing directory (a GAN's checkpoints, every epoch) would otherwise re-read
# every unchanged file each time. Files replaced with os.replace get a new inode, so a hit is the
# same bytes (the stat-based check DVC and git use).
_SHA256_BY_STAT: dict[tuple[int, int, int, int], str] = {}
_SHA256_BY_STAT_MAX = 4096


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _remember_sha256(path: Path, digest: str) -> None:
    if len(_SHA256_BY_STAT) >= _SHA256_BY_STAT_MAX:
        _SHA256_BY_STAT.clear()
    _SHA256_BY_STAT[_stat_key(path)] = digest


def _sha256_of_unchanged(path: Path) -> str:
    """:func:`file_sha256`, read again only when the file's identity, size or mtime changed."""
    digest = _SHA256_BY_STAT.get(_stat_key(path))
    if digest is None:
        digest = file_sha256(path)
        _remember_sha256(path, digest)
    return digest


@contextlib.contextmanager
def _progress_bar(enabled: bool, label: str, total: int, *, unit: str = "bytes") -> Iterator[Any]:
    """Yield ``advance(n)``; a rich bar when enabled, a no-op otherwise."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    columns += [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)  # rich's Progress is thread-safe


def _subscriber(advance: Any) -> Any:
    from s3transfer.subscribers import BaseSubscriber

    class _Progress(BaseSubscriber):
        def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
            advance(bytes_transferred)

    return _Progress()


@dataclass
class _Upload:
    rel: str
    path: Path
    size: int
    reader: _HashingReader | None = None
    future: Any = None


def _local_files(local_dir: Path) -> list[_Upload]:
    files = []
    for path in sorted(local_dir.rglob("*")):
        if path.is_symlink() and path.is_dir():
            raise InputError(f"{path}: a symlinked directory inside {local_dir}; copy it in or remove the link")
        if not path.is_file():
            continue
        rel = path.relative_to(local_dir).as_posix()
        if rel == MANIFEST_NAME:
            raise InputError(f"{path}: {MANIFEST_NAME} is reserved for lusynth's upload manifest; rename the file")
        files.append(_Upload(rel, path, path.stat().st_size))
    return files


def _manifest_digest(files: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f['path']}\0{f['size']}\0{f['sha256']}\n".encode())
    return h.hexdigest()


def upload_dir(
    local_dir: str | os.PathLike[str],
    uri: str,
    *,
    progress: bool = False,
    options: TransferOptions | None = None,
    reuse_unchanged: bool = False,
) -> dict[str, Any]:
    """Upload a directory to ``s3://bucket/prefix``, complete for readers only once it is all there.

    ``reuse_unchanged``: files whose path, size and SHA-256 match the prefix's current manifest
    are not sent again (their objects were verified when they were uploaded); for re-uploads of a
    growing directory such as a training run's checkpoints.

    Order: the old manifest (if any) is deleted, every file is uploaded (SHA-256 computed while
    streaming; S3 also verifies a SHA-256 when the server supports it), the new manifest is
    written, then objects under the prefix that the new manifest does not list are deleted.
    A failure at any point leaves no manifest, so :func:`download_dir` refuses the prefix until a
    rerun completes. Returns a summary (uri, files, bytes, digest, deleted stale objects).
    """
    opts = options or TransferOptions.from_env()
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise InputError(f"{local_dir}: not a directory; pass the folder to upload")
    loc = parse_s3_uri(uri)
    prefix = _prefix_of(loc)
    if not prefix:
        raise InputError(f"{uri}: give a prefix under the bucket (s3://{loc.bucket}/some/prefix); a re-upload replaces everything under it")
    files = _local_files(local_dir)
    if not files:
        raise InputError(f"{local_dir}: the directory is empty; nothing to upload")
    manifest_key = prefix + MANIFEST_NAME
    s3, attempts = _client_for(opts)
    total = sum(f.size for f in files)
    server_checksums = opts.server_checksums
    current = f"s3://{loc.bucket}/{manifest_key}"

    def fail(exc: BaseException) -> StorageError:
        return _describe(exc, f"upload to {current}", s3, attempts=attempts.max_attempts_seen)

    reused: dict[str, str] = {}
    if reuse_unchanged:
        from botocore.exceptions import ClientError

        try:
            old = _get_manifest(s3, attempts, loc.bucket, prefix, uri, ClientError)
        except IncompleteUpload:
            old = {"files": []}
        old_files = {str(f["path"]): (int(f["size"]), str(f["sha256"])) for f in old["files"]}
        for item in files:
            size, digest = old_files.get(item.rel, (-1, ""))
            if size == item.size and digest == _sha256_of_unchanged(item.path):  # hashed only when the size matches
                reused[item.rel] = digest
    sent_files = [f for f in files if f.rel not in reused]
    try:
        # Readers must not pair the old manifest with new objects: withdraw it first.
        s3.delete_object(Bucket=loc.bucket, Key=manifest_key)
        with _progress_bar(progress, f"upload {uri}", sum(f.size for f in sent_files)) as advance:
            subscribers = [_subscriber(advance)] if progress else []

            def put(items: list[_Upload], checksums: bool) -> None:
                nonlocal current
                try:
                    with _transfer_manager(s3, opts) as tm:
                        for item in items:
                            item.reader = _HashingReader(item.path)
                            extra = {"ChecksumAlgorithm": "SHA256"} if checksums else {}
                            item.future = tm.upload(item.reader, loc.bucket, prefix + item.rel, extra_args=extra, subscribers=subscribers)
                        # Raise at the FIRST failure, whichever file it is: waiting in order would
                        # let queued files run through their retries against a dead server first.
                        pending = list(items)
                        while pending:
                            still = []
                            for item in pending:
                                if not item.future.done():
                                    still.append(item)
                                    continue
                                current = f"s3://{loc.bucket}/{prefix + item.rel}"
                                item.future.result()
                            pending = still
                            if pending:
                                time.sleep(0.02)
                finally:  # after the manager has stopped (cancelled) every transfer
                    for item in items:
                        if item.reader is not None:
                            item.reader.close()

            # The first file probes whether the server takes S3 flexible checksums.
            try:
                put(sent_files[:1], server_checksums)
            except _boto_errors() as exc:
                code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
                if not (server_checksums and code in _CHECKSUM_UNSUPPORTED):
                    raise
                server_checksums = False
                s3, attempts = _client_for(opts, checksums=False)
                put(sent_files[:1], False)
            put(sent_files[1:], server_checksums)
        entries = []
        for item in files:
            if item.path.stat().st_size != item.size:
                raise InputError(f"{item.path}: changed size during the upload; stop the writer and re-run the upload")
            if item.rel in reused:
                entries.append({"path": item.rel, "size": item.size, "sha256": reused[item.rel]})
                continue
            assert item.reader is not None
            entries.append({"path": item.rel, "size": item.size, "sha256": item.reader.sha256})
            if reuse_unchanged:
                _remember_sha256(item.path, item.reader.sha256)  # the next re-upload need not read it again
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "kind": "lusynth.s3-dir",
            "files": entries,
            "total_bytes": total,
            "digest": _manifest_digest(entries),
        }
        current = f"s3://{loc.bucket}/{manifest_key}"
        body = dumps_json(manifest).encode("utf-8")
        put_extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"} if server_checksums else {}
        s3.put_object(Bucket=loc.bucket, Key=manifest_key, Body=body, ContentType="application/json", **put_extra)
        keep = {prefix + e["path"] for e in entries} | {manifest_key}
        stale = [k for k in _list_keys(s3, loc.bucket, prefix) if k not in keep]
        for i in range(0, len(stale), 1000):
            current = f"s3://{loc.bucket}/{stale[i]}"
            resp = s3.delete_objects(Bucket=loc.bucket, Delete={"Objects": [{"Key": k} for k in stale[i : i + 1000]], "Quiet": True})
            if resp.get("Errors"):
                err = resp["Errors"][0]
                raise StorageError(
                    f"S3 delete of stale s3://{loc.bucket}/{err.get('Key')} at {_endpoint_of(s3)} failed: {err.get('Code')}; "
                    "the new upload is complete, re-run it to remove the stale objects"
                )
    except _boto_errors() as exc:
        raise fail(exc) from None
    return {
        "uri": f"s3://{loc.bucket}/{prefix.rstrip('/')}",
        "manifest": f"s3://{loc.bucket}/{manifest_key}",
        "files": len(entries),
        "bytes": total,
        "bytes_uploaded": sum(f.size for f in sent_files),
        "files_reused": len(reused),
        "digest": manifest["digest"],
        "deleted_stale": len(stale),
        "server_checksums": server_checksums,
    }


@contextlib.contextmanager
def _transfer_manager(s3: Any, opts: TransferOptions) -> Iterator[Any]:
    """boto3's transfer manager; leaving the block on an error cancels the transfers still queued."""
    from boto3.s3.transfer import create_transfer_manager

    with create_transfer_manager(s3, opts.transfer_config()) as tm:
        yield tm


def read_manifest(uri: str, *, options: TransferOptions | None = None) -> dict[str, Any]:
    """The manifest of an uploaded directory; StorageError when the upload is incomplete."""
    from botocore.exceptions import ClientError

    opts = options or TransferOptions.from_env()
    loc = parse_s3_uri(uri)
    prefix = _prefix_of(loc)
    s3, attempts = _client_for(opts)
    return _get_manifest(s3, attempts, loc.bucket, prefix, uri, ClientError)


def _get_manifest(s3: Any, attempts: _AttemptLog, bucket: str, prefix: str, uri: str, client_error: type) -> dict[str, Any]:
    key = prefix + MANIFEST_NAME
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client_error as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise IncompleteUpload(
                f"{uri} at {_endpoint_of(s3)}: incomplete upload: no manifest ({key}); re-run the upload"
            ) from None
        raise _describe(exc, f"read of s3://{bucket}/{key}", s3, attempts=attempts.max_attempts_seen) from None
    except _boto_errors() as exc:
        raise _describe(exc, f"read of s3://{bucket}/{key}", s3, attempts=attempts.max_attempts_seen) from None
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
    from botocore.exceptions import ClientError

    opts = options or TransferOptions.from_env()
    loc = parse_s3_uri(uri)
    prefix = _prefix_of(loc)
    s3, attempts = _client_for(opts)
    manifest = _get_manifest(s3, attempts, loc.bucket, prefix, uri, ClientError)
    files = manifest["files"]
    total = int(sum(int(f["size"]) for f in files))
    current = uri
    try:
        with atomic_dir(local_dir) as tmp, _progress_bar(progress, f"download {uri}", total) as advance:
            subscribers = [_subscriber(advance)] if progress else []
            with _transfer_manager(s3, opts) as tm:
                futures = []
                for f in files:
                    target = tmp / f["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    futures.append((f, tm.download(loc.bucket, prefix + f["path"], str(target), subscribers=subscribers)))
                for f, fut in futures:
                    current = f"s3://{loc.bucket}/{prefix + f['path']}"
                    fut.result()
            # Parts of a large object arrive out of order, so the hash is taken from the file.
            for f in files:
                target = tmp / f["path"]
                key_uri = f"s3://{loc.bucket}/{prefix + f['path']}"
                size = target.stat().st_size
                if size != int(f["size"]):
                    raise StorageError(f"{key_uri} at {_endpoint_of(s3)}: {size} bytes, the manifest says {f['size']}; re-run the upload")
                digest = file_sha256(target)
                if digest != f["sha256"]:
                    raise StorageError(
                        f"{key_uri} at {_endpoint_of(s3)}: checksum mismatch (SHA-256 {digest[:12]}..., manifest "
                        f"{str(f['sha256'])[:12]}...); the object changed after the upload: re-run the upload"
                    )
    except _boto_errors() as exc:
        raise _describe(exc, f"download of {current}", s3, attempts=attempts.max_attempts_seen) from None
    return manifest

