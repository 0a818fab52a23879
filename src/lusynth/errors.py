"""Errors a user can act on. Every message names the input and what to do."""

from __future__ import annotations


class LusynthError(Exception):
    """Base class: an error whose message is meant for the user, printed without a traceback."""


class InputError(LusynthError):
    """Bad user input (a file, a CSV, a parameter); the message says which and how to fix it."""


class FrameStoreError(LusynthError):
    """A frame store directory is missing, incomplete or of an unknown schema."""


class RejectedInput(Exception):
    """One input file cannot be used; ``reason`` is a short code, ``detail`` says why.

    Raised by readers and caught by ingest, which records it in the report instead of failing.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
