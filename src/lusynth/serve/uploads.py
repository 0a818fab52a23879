"""Request bodies in bounded memory and time, split into named images, decoded from a checked header.

:func:`receive_body` runs on the event loop: it refuses a declared length over the limit before
reading, counts what arrives, keeps at most ``spool_bytes`` in memory (the rest goes to an
unlinked temp file) and gives up after ``body_timeout_s`` (408). :func:`split_uploads` and
:func:`decode_frame` are plain functions for a worker thread: parsing multipart and decoding
images is CPU work that must not stall the loop that answers ``/healthz``.
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import IO, Any

import numpy as np

ALLOWED_FORMATS = ("PNG", "JPEG")
RAW_IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg", "application/octet-stream")
_READ_CHUNK = 1 << 16


class BadUpload(Exception):
    """One upload cannot be used; ``status`` is the HTTP code to answer with. ``close``: the rest
    of the body was not read, so the connection must be closed after the answer."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class ClientGone(Exception):
    """The client closed the connection before its body arrived (not an error of ours)."""

    def __init__(self, received: int, declared: int | None) -> None:
        super().__init__(f"client went away after {received} of {declared if declared is not None else 'unknown'} body bytes")


async def receive_body(request: Any, *, max_bytes: int, timeout_s: float, spool_bytes: int,
                       spool_dir: str | os.PathLike[str] | None = None) -> IO[bytes]:
    """The request body as a file positioned at 0 (memory up to ``spool_bytes``, then an
    unlinked file in ``spool_dir``); :class:`BadUpload` 413/408/400, :class:`ClientGone`."""
    import anyio
    from starlette.requests import ClientDisconnect

    declared: int | None = None
    raw = request.headers.get("content-length")
    if raw is not None:
        try:
            declared = int(raw)
        except ValueError:
            raise BadUpload(400, f"invalid Content-Length {raw!r}", close=True) from None
        if declared > max_bytes:
            # answered without reading; uvicorn discards what the client still sends, for header_timeout_s at most
            raise BadUpload(413, f"request body of {declared} bytes is over the limit of {max_bytes}; send fewer or smaller frames")
    spool = tempfile.SpooledTemporaryFile(max_size=spool_bytes, dir=None if spool_dir is None else os.fspath(spool_dir))  # noqa: SIM115 - returned to the caller
    size = 0
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():  # counted as it arrives: chunked bodies have no length
                size += len(chunk)
                if size > max_bytes:
                    raise BadUpload(413, f"request body is over the limit of {max_bytes} bytes; send fewer or smaller frames", close=True)
                spool.write(chunk)
    except TimeoutError:
        spool.close()
        of = f" of {declared}" if declared is not None else ""
        raise BadUpload(408, f"request body not received within {timeout_s:g} s ({size}{of} bytes arrived); "
                             "send it at once, or in smaller requests", close=True) from None
    except ClientDisconnect:
        spool.close()
        raise ClientGone(size, declared) from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def _name(value: bytes | None, fallback: str) -> str:
    return value.decode("utf-8", "replace") if value else fallback


def split_uploads(content_type: str, body: IO[bytes], *, max_files: int) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` per image: the whole body for an image Content-Type, else each file part
    of a multipart form (at most ``max_files``, 413 above)."""
    from python_multipart import create_form_parser
    from python_multipart.exceptions import FormParserError

    ctype = content_type.split(";")[0].strip().lower()
    if ctype in RAW_IMAGE_TYPES:
        return [("body", body.read())]
    if ctype != "multipart/form-data":
        raise BadUpload(415, f"Content-Type {ctype or 'missing'!r}: send image/png, image/jpeg, or multipart/form-data "
                             "with one or more 'files' parts")
    files: list[tuple[str, bytes]] = []
    fields = [0]

    def on_file(f: Any) -> None:
        if len(files) >= max_files:
            raise BadUpload(413, f"more than {max_files} images in one request; send at most {max_files}")
        obj = f.file_object
        obj.seek(0)
        files.append((_name(f.file_name, _name(f.field_name, "file")), obj.read()))
        f.close()

    def on_field(_f: Any) -> None:  # plain form fields are ignored, but not without bound
        fields[0] += 1
        if fields[0] > max_files:
            raise BadUpload(413, f"more than {max_files} form fields in one request")

    try:
        # parts stay in memory (the body is already bounded); nothing is written to disk by the parser
        parser = create_form_parser({"Content-Type": content_type.encode("latin-1")}, on_field, on_file,
                                    config={"MAX_MEMORY_FILE_SIZE": float("inf")})
        while chunk := body.read(_READ_CHUNK):
            parser.write(chunk)
        parser.finalize()
    except (FormParserError, ValueError, UnicodeEncodeError) as exc:
        raise BadUpload(400, f"malformed multipart body ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                             f"send images as 'files' parts, at most {max_files} per request") from None
    if not files:
        raise BadUpload(422, "no file parts in the form; send images as 'files' parts")
    return files


def decode_frame(data: bytes, *, name: str, image_size: int, max_pixels: int) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 (S, S) grey frame, or :class:`BadUpload` saying what is wrong.

    The header's size is checked before any pixel is decoded: more than ``max_pixels`` -> 413,
    another size than the model's -> 422; only PNG and JPEG decoders are tried."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadUpload(422, f"{name}: empty file; send a PNG or JPEG frame")
    try:
        img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))  # reads the header only
    except UnidentifiedImageError:
        raise BadUpload(415, f"{name}: not a PNG or JPEG image; send {image_size}x{image_size} grey PNG/JPEG frames") from None
    except Image.DecompressionBombError:
        # PIL's own guard fires first for headers far beyond any limit of ours
        raise BadUpload(413, f"{name}: the image header declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels, "
                             f"over the limit of {max_pixels}; send {image_size}x{image_size} frames") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the client's bad file
        raise BadUpload(422, f"{name}: cannot read the image header ({type(exc).__name__})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise BadUpload(413, f"{name}: {w}x{h} pixels is over the limit of {max_pixels} (far above the model's "
                             f"{image_size}x{image_size}); send frames at that size")
    if (w, h) != (image_size, image_size):
        raise BadUpload(422, f"{name}: image is {w}x{h}; this model takes {image_size}x{image_size} grey frames "
                             "(as written by `lusynth ingest`)")
    try:
        img.load()
        if img.mode not in ("L", "RGB", "RGBA", "LA", "P", "I;16", "I"):
            raise BadUpload(422, f"{name}: unsupported pixel mode {img.mode}; send 8-bit grey or RGB")
        frame = np.asarray(img.convert("L"), dtype=np.uint8)
    except BadUpload:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt image data
        raise BadUpload(422, f"{name}: the image data is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    return frame
