"""Loading the pseudonymisation key (IO). Never a constant in code.

Order: ``LUSYNTH_PSEUDONYM_KEY`` (the key itself), ``LUSYNTH_PSEUDONYM_KEY_FILE`` (a secret file,
e.g. a mounted Kubernetes Secret), else a per-user key file created once with 32 random bytes at
``$XDG_CONFIG_HOME/lusynth/pseudonym.key`` (mode 0600), so one machine gives stable pseudonyms
across runs without anyone choosing a weak key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from lusynth.errors import InputError

KEY_ENV = "LUSYNTH_PSEUDONYM_KEY"
KEY_FILE_ENV = "LUSYNTH_PSEUDONYM_KEY_FILE"


def default_key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lusynth" / "pseudonym.key"


def load_key() -> tuple[bytes, str]:
    """Return (key, where it came from) — the origin is reported, never the key."""
    value = os.environ.get(KEY_ENV)
    if value:
        if len(value) < 16:
            raise InputError(f"{KEY_ENV} is shorter than 16 characters; use a long random value (e.g. `openssl rand -hex 32`)")
        return value.encode(), f"env {KEY_ENV}"
    path_s = os.environ.get(KEY_FILE_ENV)
    if path_s:
        path = Path(path_s)
        if not path.is_file():
            raise InputError(f"{KEY_FILE_ENV}={path}: file not found; point it at the mounted secret")
        key = path.read_bytes().strip()
        if len(key) < 16:
            raise InputError(f"{path}: pseudonymisation key shorter than 16 bytes")
        return key, f"file {path}"
    path = default_key_file()
    if not path.is_file():
        # write a private temp file, then hard-link it into place: concurrent first runs agree on one key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_bytes().strip(), f"file {path} (created per user; set {KEY_ENV} or {KEY_FILE_ENV} to share a key)"


def key_fingerprint() -> str:
    """A keyed fingerprint of the pseudonym key (16 hex digits), for cache keys: it changes with the
    key but reveals nothing about it (an HMAC keyed by it, not a hash of it)."""
    key, _ = load_key()
    return hmac.new(key, b"lusynth stage-cache fingerprint", hashlib.sha256).hexdigest()[:16]
