"""SHA-256 of the files an upload sends: taken while the bytes stream out, and remembered by
file identity so that a re-upload need not read an unchanged file again."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from lusynth.util import file_sha256


class HashingReader:
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


# SHA-256 of local files by (device, inode, size, mtime_ns), for ``upload_dir(reuse_unchanged=True)``:
# re-uploads of a growing directory (a GAN's checkpoints, every epoch) would otherwise re-read
# every unchanged file each time. Files replaced with os.replace get a new inode, so a hit is the
# same bytes (the stat-based check DVC and git use).
_SHA256_BY_STAT: dict[tuple[int, int, int, int], str] = {}
_SHA256_BY_STAT_MAX = 4096


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def remember_sha256(path: Path, digest: str) -> None:
    """Record ``digest`` as the SHA-256 of ``path`` as it is now (its identity, size and mtime)."""
    if len(_SHA256_BY_STAT) >= _SHA256_BY_STAT_MAX:
        _SHA256_BY_STAT.clear()
    _SHA256_BY_STAT[_stat_key(path)] = digest


def sha256_of_unchanged(path: Path) -> str:
    """:func:`file_sha256`, read again only when the file's identity, size or mtime changed."""
    digest = _SHA256_BY_STAT.get(_stat_key(path))
    if digest is None:
        digest = file_sha256(path)
        remember_sha256(path, digest)
    return digest
