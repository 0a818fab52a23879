"""Pseudonymous identifiers (pure): a keyed hash, so ids are stable for one key and unlinkable without it.

HMAC-SHA256 rather than a plain hash: patient ids are short and guessable (MRNs, 'PAT-0007'), so an
unkeyed hash could be reversed by enumeration. The key is loaded by :mod:`lusynth.data.keys`.
"""

from __future__ import annotations

import hashlib
import hmac


def pseudonymise(value: str, key: bytes, *, prefix: str = "p", length: int = 16) -> str:
    """Keyed pseudonym of ``value``, e.g. ``p-3fa2...``; ``prefix`` separates namespaces (patients, clips)."""
    if not key:
        raise ValueError("pseudonymisation key is empty")
    mac = hmac.new(key, f"{prefix}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{prefix}-{mac[:length]}"
