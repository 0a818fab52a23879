"""``lusynth serve``: the ONNX classifier behind HTTP (FastAPI on onnxruntime, no PyTorch).

Endpoints:

- ``POST /predict``: one or more PNG/JPEG grey frames at the model's trained size, either as the
  raw request body (``Content-Type: image/png`` / ``image/jpeg``) or as a multipart form with one
  or more ``file``/``files`` parts (a batch). Returns the class probabilities of each frame.
- ``GET /healthz``: liveness + whether the model is loaded.
- ``GET /metadata``: classes, image size, preprocessing, model source/version, sha256.

Bad input never crashes the service: a body over ``max_upload_bytes`` -> 413, more than
``max_batch`` images -> 413, not PNG/JPEG -> 415, an undecodable or wrong-size image -> 422, each
with a message naming the file and what to send. Only PNG and JPEG are decoded (PIL's other
plugins are never tried), and the pixel count is checked before decoding (decompression bombs).

The model is either an ``.onnx`` file or ``models:/NAME@ALIAS`` (``models:/NAME/VERSION``) from the
MLflow registry; a registry model's sha256 must equal the ``lusynth.onnx_sha256`` tag recorded
at registration, else it is not loaded. onnxruntime threads come from the CPU quota.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime

import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lusynth.errors import InputError, LusynthError

DEFAULT_MAX_UPLOAD_BYTES = 8 << 20  # 8 MiB per request
DEFAULT_MAX_BATCH = 64
ALLOWED_FORMATS = ("PNG", "JPEG")
_MAX_PIXELS_FACTOR = 16  # refuse images with more than 16x the model's pixel count before decoding


class ModelIntegrityError(LusynthError):
    """The model file's hash differs from the registry's record."""


@dataclass
class LoadedModel:
    """An onnxruntime session with what the API reports about it."""

    session: Any
    input_name: str
    classes: list[str]
    image_size: int
    positive_class: str
    threshold: float
    metadata: dict[str, str]
    source: str
    sha256: str
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_model(model: str | os.PathLike[str], *, tracking_dir: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Load an .onnx file or a registry URI (hash-checked) into an onnxruntime session."""
    from lusynth.export.onnx_export import file_sha256, ort_session, read_metadata

    src = str(model)
    version = None
    if src.startswith("models:/"):
        from lusynth.registry import resolve_model

        tmp = Path(tempfile.mkdtemp(prefix="lusynth-serve-"))
        resolved = resolve_model(src, tmp, local_dir=tracking_dir)
        path, version = resolved.path, resolved.version
        sha = file_sha256(path)
        if not resolved.expected_sha256:
            raise ModelIntegrityError(f"{src} (version {version}): the registry records no lusynth.onnx_sha256 tag; "
                                      "register it with `lusynth export` so its integrity can be checked")
        if sha != resolved.expected_sha256:
            raise ModelIntegrityError(f"{src} (version {version}): downloaded model sha256 {sha} != registry's "
                                      f"{resolved.expected_sha256}; the artifact was changed after registration, not loading it")
    else:
        path = Path(src)
        if not path.is_file():
            raise InputError(f"{path}: no such model file; pass an .onnx file from `lusynth export` or models:/NAME@champion")
        sha = file_sha256(path)
    meta = read_metadata(path)
    if meta.get("lusynth.kind") != "classifier":
        raise InputError(f"{src}: not a lusynth classifier ONNX model (metadata lusynth.kind={meta.get('lusynth.kind')!r})")
    session = ort_session(path)
    classes = json.loads(meta["lusynth.classes"])
    return LoadedModel(session=session, input_name=session.get_inputs()[0].name, classes=classes,
                       image_size=int(meta["lusynth.image_size"]), positive_class=meta.get("lusynth.positive_class", classes[-1]),
                       threshold=float(meta.get("lusynth.threshold", 0.5)), metadata=meta, source=src, sha256=sha,
                       version=version)


class BadUpload(Exception):
    """One upload cannot be used; ``status`` is the HTTP code to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_frame(data: bytes, *, name: str, image_size: int) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 (S, S) grey frame, or :class:`BadUpload` saying what is wrong."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadUpload(422, f"{name}: empty file; send a PNG or JPEG frame")
    try:
        img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except UnidentifiedImageError:
        raise BadUpload(415, f"{name}: not a PNG or JPEG image; send {image_size}x{image_size} grey PNG/JPEG frames") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the client's bad file
        raise BadUpload(422, f"{name}: cannot read the image header ({type(exc).__name__})") from None
    w, h = img.size
    if w * h > _MAX_PIXELS_FACTOR * image_size * image_size:
        raise BadUpload(413, f"{name}: {w}x{h} pixels is far above the model's {image_size}x{image_size}; send frames at that size")
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


def predict(model: LoadedModel, frames: np.ndarray) -> np.ndarray:
    """Class probabilities (N, n_classes) for uint8 frames (N, S, S)."""
    return model.session.run(None, {model.input_name: np.ascontiguousarray(frames, dtype=np.uint8)})[0]


def create_app(
    model: str | os.PathLike[str] | LoadedModel,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
    tracking_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """The FastAPI app serving ``model`` (an .onnx path, a ``models:/`` URI or a :class:`LoadedModel`)."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse
    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartException, MultiPartParser

    from lusynth import __version__

    if max_upload_bytes < 1 or max_batch < 1:
        raise InputError(f"max_upload_bytes={max_upload_bytes}, max_batch={max_batch}: both must be >= 1")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, tracking_dir=tracking_dir)
    app = FastAPI(title="lusynth LUS frame classifier", version=__version__)
    app.state.model = loaded

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": message})

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": app.state.model is not None}

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        m: LoadedModel = app.state.model
        return {"source": m.source, "version": m.version, "sha256": m.sha256, "classes": m.classes,
                "positive_class": m.positive_class, "threshold": m.threshold, "image_size": m.image_size,
                "input": m.metadata.get("lusynth.input"), "preprocessing": json.loads(m.metadata.get("lusynth.preprocessing", "{}")),
                "max_upload_bytes": max_upload_bytes, "max_batch": max_batch,
                "model_metadata": {k: v for k, v in m.metadata.items() if k.startswith("lusynth.")}}

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > max_upload_bytes:
                    raise BadUpload(413, f"request body of {int(declared)} bytes is over the limit of {max_upload_bytes}; send fewer or smaller frames")
            except ValueError:
                raise BadUpload(400, f"invalid Content-Length {declared!r}") from None
        chunks, size = [], 0
        async for chunk in request.stream():  # counted as it arrives: chunked bodies have no length
            size += len(chunk)
            if size > max_upload_bytes:
                raise BadUpload(413, f"request body is over the limit of {max_upload_bytes} bytes; send fewer or smaller frames")
            chunks.append(chunk)
        return b"".join(chunks)

    async def uploads(request: Request, body: bytes) -> list[tuple[str, bytes]]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype in ("image/png", "image/jpeg", "image/jpg", "application/octet-stream"):
            return [("body", body)]
        if ctype != "multipart/form-data":
            raise BadUpload(415, f"Content-Type {ctype or 'missing'!r}: send image/png, image/jpeg, or multipart/form-data "
                                 "with one or more 'files' parts")

        async def stream():
            yield body

        try:
            form = await MultiPartParser(Headers(raw=request.headers.raw), stream(), max_files=max_batch,
                                         max_fields=max_batch, max_part_size=max_upload_bytes).parse()
        except MultiPartException as exc:
            status = 413 if "Too many" in exc.message else 400
            raise BadUpload(status, f"malformed multipart body: {exc.message} (at most {max_batch} files per request)") from None
        try:
            files = []
            for key, value in form.multi_items():
                if isinstance(value, str):  # a plain form field, not a file
                    continue
                files.append((value.filename or key, await value.read()))
        finally:
            await form.close()
        if not files:
            raise BadUpload(422, "no file parts in the form; send images as 'files' parts")
        return files

    @app.post("/predict")
    async def predict_endpoint(request: Request) -> Any:
        t0 = time.perf_counter()
        m: LoadedModel = app.state.model
        try:
            body = await read_body(request)
            files = await uploads(request, body)
            if len(files) > max_batch:
                raise BadUpload(413, f"{len(files)} images in one request; the limit is {max_batch}")
            frames = np.stack([decode_frame(data, name=name, image_size=m.image_size) for name, data in files])
        except BadUpload as exc:
            return error(exc.status, exc.message)
        probs = await run_in_threadpool(predict, m, frames)
        pos = m.classes.index(m.positive_class) if m.positive_class in m.classes else len(m.classes) - 1
        preds = []
        for (name, _), p in zip(files, probs, strict=False):
            preds.append({"file": name, "probabilities": {c: float(x) for c, x in zip(m.classes, p, strict=False)},
                          "positive_probability": float(p[pos]),
                          "label": m.positive_class if p[pos] >= m.threshold else m.classes[1 - pos] if len(m.classes) == 2 else m.classes[int(np.argmax(p))]})
        return {"model": {"source": m.source, "version": m.version, "sha256": m.sha256}, "threshold": m.threshold,
                "predictions": preds, "seconds": time.perf_counter() - t0}

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # noqa: ARG001
        # the service stays up; the client learns it was our fault, not theirs
        return error(500, f"internal error: {type(exc).__name__}")

    return app


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8080, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
          max_batch: int = DEFAULT_MAX_BATCH, tracking_dir: str | os.PathLike[str] | None = None) -> None:
    """Run the service with uvicorn (one worker; onnxruntime uses the CPU quota's threads)."""
    import uvicorn

    from lusynth.runtime import configure_threads

    configure_threads()
    app = create_app(model, max_upload_bytes=max_upload_bytes, max_batch=max_batch, tracking_dir=tracking_dir)
    uvicorn.run(app, host=host, port=port, workers=1, log_level="info")
