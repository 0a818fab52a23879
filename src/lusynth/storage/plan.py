"""Planning a directory upload: which files to send, which objects to keep as they are, which to
delete, and the manifest that will list them. Pure: the caller brings the local files and what the
prefix holds now; nothing here reads a file or talks to S3."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lusynth.storage.manifest import MANIFEST_NAME, manifest_document


@dataclass(frozen=True)
class LocalFile:
    """One file of a directory to upload."""

    rel: str  # path below the directory (posix); its key is the prefix + rel
    path: Path
    size: int
    sha256: str | None = None  # known before the upload only for files a reuse could match


@dataclass(frozen=True)
class UploadPlan:
    """What an upload to ``prefix`` does, decided before a byte moves."""

    prefix: str  # ends with "/"
    files: tuple[LocalFile, ...]  # every file, in manifest order
    put: tuple[LocalFile, ...]  # sent, in this order (the first probes the server's checksum support)
    reuse: Mapping[str, str] = field(default_factory=dict)  # rel -> SHA-256 of files whose objects stay
    delete: tuple[str, ...] = ()  # keys under the prefix the new manifest does not list; deleted after it is written

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST_NAME

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def bytes_to_put(self) -> int:
        return sum(f.size for f in self.put)

    def manifest(self, sent_sha256: Mapping[str, str]) -> dict[str, Any]:
        """The new manifest, given the SHA-256 of every file sent (taken while it streamed)."""
        entries = [
            {"path": f.rel, "size": f.size, "sha256": self.reuse[f.rel] if f.rel in self.reuse else sent_sha256[f.rel]}
            for f in self.files
        ]
        return manifest_document(entries, self.total_bytes)


def _remote_files(remote_manifest: Mapping[str, Any] | None) -> dict[str, tuple[int, str]]:
    files = remote_manifest["files"] if remote_manifest else []
    return {str(f["path"]): (int(f["size"]), str(f["sha256"])) for f in files}


def reuse_candidates(files: Sequence[LocalFile], remote_manifest: Mapping[str, Any] | None) -> list[LocalFile]:
    """The files whose path and size match an entry of ``remote_manifest``: only these can be
    reused, so only these need their SHA-256 before the upload."""
    remote = _remote_files(remote_manifest)
    return [f for f in files if remote.get(f.rel, (-1, ""))[0] == f.size]


def plan_upload(
    files: Sequence[LocalFile],
    remote_manifest: Mapping[str, Any] | None,
    remote_keys: Iterable[str],
    *,
    prefix: str,
    reuse_unchanged: bool = False,
) -> UploadPlan:
    """The plan for uploading ``files`` to ``prefix`` (``"some/prefix/"``).

    ``remote_manifest`` is the prefix's current manifest (None if it has none) and ``remote_keys``
    every key under the prefix now. With ``reuse_unchanged``, a file whose path, size and known
    ``sha256`` equal its entry in ``remote_manifest`` is reused, not sent; every other file is sent.
    Keys that are neither a file's nor the manifest's are deleted once the new manifest is written.
    """
    remote = _remote_files(remote_manifest) if reuse_unchanged else {}
    reuse = {f.rel: f.sha256 for f in files if f.sha256 is not None and remote.get(f.rel) == (f.size, f.sha256)}
    keep = {prefix + f.rel for f in files} | {prefix + MANIFEST_NAME}
    return UploadPlan(
        prefix=prefix,
        files=tuple(files),
        put=tuple(f for f in files if f.rel not in reuse),
        reuse=reuse,
        delete=tuple(k for k in remote_keys if k not in keep),
    )
