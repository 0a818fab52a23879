"""Uploading a directory under the manifest protocol (:mod:`lusynth.storage.manifest`), in three
steps: :func:`~lusynth.storage.plan.plan_upload` decides, :func:`put` sends, :func:`commit`
writes the manifest last. :func:`upload_dir` composes them."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lusynth.atomic import dumps_json
from lusynth.errors import InputError
from lusynth.storage.client import (
    AttemptLog,
    IncompleteUpload,
    StorageError,
    TransferOptions,
    boto_errors,
    connect,
    describe,
    endpoint_of,
    error_code,
    list_keys,
)
from lusynth.storage.digests import HashingReader, remember_sha256, sha256_of_unchanged
from lusynth.storage.manifest import MANIFEST_NAME, get_manifest
from lusynth.storage.plan import LocalFile, UploadPlan, plan_upload, reuse_candidates
from lusynth.storage.transfer import progress_bar, subscribers, transfer_manager
from lusynth.storage.uri import parse_s3_uri, prefix_of

# Error codes an S3-compatible server answers when it does not implement flexible checksums;
# on these the upload falls back to plain PUTs (the manifest's SHA-256 still guards the data).
_CHECKSUM_UNSUPPORTED = {"NotImplemented", "InvalidRequest", "InvalidArgument", "UnsupportedChecksumAlgorithm"}


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
    prefix = prefix_of(loc)
    if not prefix:
        raise InputError(f"{uri}: give a prefix under the bucket (s3://{loc.bucket}/some/prefix); a re-upload replaces everything under it")
    files = scan_dir(local_dir)
    if not files:
        raise InputError(f"{local_dir}: the directory is empty; nothing to upload")
    s3, attempts = connect(opts)
    remote_manifest = _current_manifest(s3, attempts, loc.bucket, prefix, uri) if reuse_unchanged else None
    if reuse_unchanged:
        files = _with_reuse_digests(files, remote_manifest)
    remote_keys = _current_keys(s3, attempts, loc.bucket, prefix)
    plan = plan_upload(files, remote_manifest, remote_keys, prefix=prefix, reuse_unchanged=reuse_unchanged)
    sent = put(plan, loc.bucket, s3, attempts, opts, progress=progress, label=f"upload {uri}")
    if reuse_unchanged:
        for f in plan.put:
            remember_sha256(f.path, sent.sha256[f.rel])  # the next re-upload need not read it again
    manifest = commit(plan, loc.bucket, sent)
    return {
        "uri": f"s3://{loc.bucket}/{prefix.rstrip('/')}",
        "manifest": f"s3://{loc.bucket}/{plan.manifest_key}",
        "files": len(manifest["files"]),
        "bytes": plan.total_bytes,
        "bytes_uploaded": plan.bytes_to_put,
        "files_reused": len(plan.reuse),
        "digest": manifest["digest"],
        "deleted_stale": len(plan.delete),
        "server_checksums": sent.server_checksums,
    }


def scan_dir(local_dir: Path) -> list[LocalFile]:
    """Every file under ``local_dir``, sorted by path; a symlinked directory or a file named like
    the manifest is refused."""
    files = []
    for path in sorted(local_dir.rglob("*")):
        if path.is_symlink() and path.is_dir():
            raise InputError(f"{path}: a symlinked directory inside {local_dir}; copy it in or remove the link")
        if not path.is_file():
            continue
        rel = path.relative_to(local_dir).as_posix()
        if rel == MANIFEST_NAME:
            raise InputError(f"{path}: {MANIFEST_NAME} is reserved for lusynth's upload manifest; rename the file")
        files.append(LocalFile(rel, path, path.stat().st_size))
    return files


def _current_manifest(s3: Any, attempts: AttemptLog, bucket: str, prefix: str, uri: str) -> dict[str, Any] | None:
    try:
        return get_manifest(s3, attempts, bucket, prefix, uri)
    except IncompleteUpload:
        return None


def _with_reuse_digests(files: Sequence[LocalFile], remote_manifest: dict[str, Any] | None) -> list[LocalFile]:
    """``files`` with the SHA-256 of those a reuse could match (hashed only when the size matches,
    and not read again when the file is unchanged since it was last hashed)."""
    candidates = {f.rel for f in reuse_candidates(files, remote_manifest)}
    return [replace(f, sha256=sha256_of_unchanged(f.path)) if f.rel in candidates else f for f in files]


def _current_keys(s3: Any, attempts: AttemptLog, bucket: str, prefix: str) -> list[str]:
    try:
        return list_keys(s3, bucket, prefix)
    except boto_errors() as exc:
        raise describe(exc, f"upload to s3://{bucket}/{prefix}{MANIFEST_NAME}", s3, attempts=attempts.max_attempts_seen) from None


@dataclass(frozen=True)
class Sent:
    """What :func:`put` did: each sent file's SHA-256, and the client :func:`commit` goes on with."""

    sha256: dict[str, str]  # rel -> SHA-256 computed while streaming
    server_checksums: bool  # False once the server refused flexible checksums (plain PUTs since)
    s3: Any
    attempts: AttemptLog


class _ObjectFailed(Exception):
    """One object's transfer failed; carries its key to the error message."""

    def __init__(self, key: str, error: BaseException) -> None:
        super().__init__(f"{key}: {error}")
        self.key = key
        self.error = error


def put(
    plan: UploadPlan, bucket: str, s3: Any, attempts: AttemptLog, opts: TransferOptions, *, progress: bool = False, label: str = "upload"
) -> Sent:
    """Withdraw the prefix's manifest, then send the plan's files to ``bucket``.

    The first file probes whether the server takes S3 flexible checksums; if it refuses them,
    that file and the rest go as plain PUTs from a client that sends none. A failure raises
    :class:`StorageError` naming the first object that failed.
    """
    checksums = opts.server_checksums
    sha256: dict[str, str] = {}
    try:
        # Readers must not pair the old manifest with new objects: withdraw it first.
        s3.delete_object(Bucket=bucket, Key=plan.manifest_key)
        with progress_bar(progress, label, plan.bytes_to_put) as advance:
            subs = subscribers(advance, progress)
            first, rest = plan.put[:1], plan.put[1:]
            try:
                sha256.update(_send(s3, opts, bucket, plan.prefix, first, checksums=checksums, subscribers=subs))
            except _ObjectFailed as failed:
                if not (checksums and error_code(failed.error) in _CHECKSUM_UNSUPPORTED):
                    raise
                checksums = False
                s3, attempts = connect(opts, checksums=False)
                sha256.update(_send(s3, opts, bucket, plan.prefix, first, checksums=False, subscribers=subs))
            sha256.update(_send(s3, opts, bucket, plan.prefix, rest, checksums=checksums, subscribers=subs))
    except _ObjectFailed as failed:
        raise describe(failed.error, f"upload to s3://{bucket}/{failed.key}", s3, attempts=attempts.max_attempts_seen) from None
    except boto_errors() as exc:
        raise describe(exc, f"upload to s3://{bucket}/{plan.manifest_key}", s3, attempts=attempts.max_attempts_seen) from None
    return Sent(sha256, checksums, s3, attempts)


def _send(
    s3: Any, opts: TransferOptions, bucket: str, prefix: str, files: Sequence[LocalFile], *, checksums: bool, subscribers: list[Any]
) -> dict[str, str]:
    """Upload ``files`` concurrently; their SHA-256 as streamed. Raises :class:`_ObjectFailed` at
    the first failure."""
    readers: list[HashingReader] = []
    try:
        with transfer_manager(s3, opts) as tm:
            extra = {"ChecksumAlgorithm": "SHA256"} if checksums else {}
            pending = []
            for f in files:
                readers.append(HashingReader(f.path))
                pending.append((prefix + f.rel, tm.upload(readers[-1], bucket, prefix + f.rel, extra_args=extra, subscribers=subscribers)))
            # Raise at the FIRST failure, whichever file it is: waiting in order would
            # let queued files run through their retries against a dead server first.
            while pending:
                still = []
                for key, future in pending:
                    if not future.done():
                        still.append((key, future))
                        continue
                    try:
                        future.result()
                    except boto_errors() as exc:
                        raise _ObjectFailed(key, exc) from exc
                pending = still
                if pending:
                    time.sleep(0.02)
    finally:  # after the manager has stopped (cancelled) every transfer
        for reader in readers:
            reader.close()
    return {f.rel: reader.sha256 for f, reader in zip(files, readers, strict=True)}


def commit(plan: UploadPlan, bucket: str, sent: Sent) -> dict[str, Any]:
    """Write the plan's manifest, the last object of the upload (from here readers see the new
    directory), then delete the keys the plan lists as stale. Returns the manifest.

    A file whose size changed since the plan was made is refused (:class:`InputError`) before
    the manifest is written.
    """
    for f in plan.files:
        if f.path.stat().st_size != f.size:
            raise InputError(f"{f.path}: changed size during the upload; stop the writer and re-run the upload")
    manifest = plan.manifest(sent.sha256)
    s3 = sent.s3
    current = plan.manifest_key
    try:
        body = dumps_json(manifest).encode("utf-8")
        put_extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"} if sent.server_checksums else {}
        s3.put_object(Bucket=bucket, Key=plan.manifest_key, Body=body, ContentType="application/json", **put_extra)
        for i in range(0, len(plan.delete), 1000):
            current = plan.delete[i]
            chunk = plan.delete[i : i + 1000]
            resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            if resp.get("Errors"):
                err = resp["Errors"][0]
                raise StorageError(
                    f"S3 delete of stale s3://{bucket}/{err.get('Key')} at {endpoint_of(s3)} failed: {err.get('Code')}; "
                    "the new upload is complete, re-run it to remove the stale objects"
                )
    except boto_errors() as exc:
        raise describe(exc, f"upload to s3://{bucket}/{current}", s3, attempts=sent.attempts.max_attempts_seen) from None
    return manifest
