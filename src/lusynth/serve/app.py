"""``lusynth serve``: the ONNX classifier behind HTTP (FastAPI on onnxruntime, no PyTorch).

Endpoints:

- ``POST /predict``: one or more PNG/JPEG grey frames at the model's trained size, either as the
  raw request body (``Content-Type: image/png`` / ``image/jpeg``) or as a multipart form with one
  or more ``file``/``files`` parts (a batch). Returns the class probabilities of each frame.
- ``GET /healthz``: liveness + whether the model is loaded (answered on the event loop, never
  queued behind predictions).
- ``GET /metadata``: classes, image size, preprocessing, model name/version, sha256, limits; no
  server filesystem paths.

Bad input never crashes the service (limits in :class:`~lusynth.serve.limits.ServeLimits`): a
body over ``max_upload_bytes`` -> 413 (from its Content-Length, before reading), more than
``max_batch`` images -> 413, an image header declaring more than ``max_image_pixels`` -> 413
(before decoding: decompression bombs), not PNG/JPEG -> 415, an undecodable or wrong-size image
-> 422, a body not sent within ``body_timeout_s`` -> 408 and the connection closed; each with a
message naming the file and what to send. A client that goes away is logged at INFO.

The model is either an ``.onnx`` file or ``models:/NAME@ALIAS`` (``models:/NAME/VERSION``) from the
MLflow registry; a registry model's sha256 must equal the ``lusynth.onnx_sha256`` tag recorded
at registration, else it is not loaded. A file that is not a readable lusynth ONNX classifier is
one :class:`~lusynth.errors.InputError` naming it. onnxruntime threads come from the CPU quota.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime

import asyncio
import dataclasses
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lusynth.errors import InputError, LusynthError
from lusynth.serve.limits import ServeLimits
from lusynth.serve.uploads import BadUpload, ClientGone, decode_frame, receive_body, split_uploads

DEFAULT_MAX_UPLOAD_BYTES = ServeLimits.max_upload_bytes
DEFAULT_MAX_BATCH = ServeLimits.max_batch

log = logging.getLogger("lusynth.serve")


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

    @property
    def public_source(self) -> str:
        """``source`` as clients see it: a registry URI, or only the file's name (no server path)."""
        return self.source if self.source.startswith("models:/") else Path(self.source).name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _open_onnx(path: Path, src: str) -> tuple[dict[str, str], Any]:
    """Metadata and onnxruntime session of ``path``; :class:`InputError` naming ``src`` when the
    file is garbage, truncated or not a lusynth classifier."""
    from lusynth.export.onnx_export import ort_session, read_metadata

    fix = "pass an .onnx file written by `lusynth export` (or models:/NAME@champion)"
    try:
        meta = read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - protobuf/onnx raise many types for a bad file
        raise InputError(f"{src}: not a readable ONNX model ({_first_line(exc)}); {fix}") from None
    if meta.get("lusynth.kind") != "classifier":
        raise InputError(f"{src}: not a lusynth classifier ONNX model (metadata lusynth.kind={meta.get('lusynth.kind')!r}); {fix}")
    try:
        json.loads(meta["lusynth.classes"])
        int(meta["lusynth.image_size"])
        float(meta.get("lusynth.threshold", 0.5))
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{src}: lusynth metadata is incomplete or malformed ({_first_line(exc)}); {fix}") from None
    try:
        session = ort_session(path)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
        raise InputError(f"{src}: onnxruntime cannot load this model ({_first_line(exc)}); {fix}") from None
    return meta, session


def load_model(model: str | os.PathLike[str], *, tracking_dir: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Load an .onnx file or a registry URI (hash-checked) into an onnxruntime session.

    A registry model is downloaded into a private temp dir that is removed as soon as the
    session holds the model (also when the hash check refuses it)."""
    from lusynth.export.onnx_export import file_sha256
    from lusynth.serve.server import private_tempdir

    src = str(model)
    version = None
    if src.startswith("models:/"):
        from lusynth.registry import resolve_model

        with private_tempdir() as tmp:
            resolved = resolve_model(src, tmp, local_dir=tracking_dir)
            path, version = resolved.path, resolved.version
            sha = file_sha256(path)
            if not resolved.expected_sha256:
                raise ModelIntegrityError(f"{src} (version {version}): the registry records no lusynth.onnx_sha256 tag; "
                                          "register it with `lusynth export` so its integrity can be checked")
            if sha != resolved.expected_sha256:
                raise ModelIntegrityError(f"{src} (version {version}): downloaded model sha256 {sha} != registry's "
                                          f"{resolved.expected_sha256}; the artifact was changed after registration, not loading it")
            meta, session = _open_onnx(path, src)
    else:
        path = Path(src)
        if not path.is_file():
            raise InputError(f"{path}: no such model file; pass an .onnx file from `lusynth export` or models:/NAME@champion")
        try:
            sha = file_sha256(path)
        except OSError as exc:
            raise InputError(f"{src}: cannot read the model file ({_first_line(exc)})") from None
        meta, session = _open_onnx(path, src)
    classes = json.loads(meta["lusynth.classes"])
    return LoadedModel(session=session, input_name=session.get_inputs()[0].name, classes=classes,
                       image_size=int(meta["lusynth.image_size"]), positive_class=meta.get("lusynth.positive_class", classes[-1]),
                       threshold=float(meta.get("lusynth.threshold", 0.5)), metadata=meta, source=src, sha256=sha,
                       version=version)


# an absolute POSIX or Windows path inside a metadata value (not the "/" of "x / 255" or of a URL)
_ABS_PATH = re.compile(r"(?<![\w.:/\\])(?:/[^\s/\"',;]+)+/?|\b[A-Za-z]:\\[^\s\"',;]*")


def public_metadata(meta: dict[str, str]) -> dict[str, Any]:
    """The model's ``lusynth.*`` metadata without filesystem paths of the machine that trained it:
    ``store_digests`` keeps its digests only, any other absolute path keeps its last component."""
    out: dict[str, Any] = {}
    for k, v in meta.items():
        if not k.startswith("lusynth."):
            continue
        if k == "lusynth.store_digests":
            try:
                out[k] = sorted(set(json.loads(v).values()))
            except (ValueError, AttributeError):
                out[k] = []
            continue
        out[k] = _ABS_PATH.sub(lambda m: Path(m.group(0).replace("\\", "/").rstrip("/")).name or "/", v)
    return out


def predict(model: LoadedModel, frames: np.ndarray) -> np.ndarray:
    """Class probabilities (N, n_classes) for uint8 frames (N, S, S)."""
    return model.session.run(None, {model.input_name: np.ascontiguousarray(frames, dtype=np.uint8)})[0]


def predict_uploads(model: LoadedModel, content_type: str, body: Any, limits: ServeLimits) -> list[dict[str, Any]]:
    """Parse, decode and predict one request body (CPU work: runs in a worker thread)."""
    files = split_uploads(content_type, body, max_files=limits.max_batch)
    max_px = limits.pixel_limit(model.image_size)
    frames = np.stack([decode_frame(data, name=name, image_size=model.image_size, max_pixels=max_px) for name, data in files])
    probs = predict(model, frames)
    classes, pos_class = model.classes, model.positive_class
    pos = classes.index(pos_class) if pos_class in classes else len(classes) - 1
    preds = []
    for (name, _), p in zip(files, probs, strict=False):
        label = pos_class if p[pos] >= model.threshold else classes[1 - pos] if len(classes) == 2 else classes[int(np.argmax(p))]
        preds.append({"file": name, "probabilities": {c: float(x) for c, x in zip(classes, p, strict=False)},
                      "positive_probability": float(p[pos]), "label": label})
    return preds


def create_app(
    model: str | os.PathLike[str] | LoadedModel,
    *,
    limits: ServeLimits | None = None,
    tracking_dir: str | os.PathLike[str] | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Any:
    """The FastAPI app serving ``model`` (an .onnx path, a ``models:/`` URI or a :class:`LoadedModel`).

    ``overrides`` are :class:`ServeLimits` fields (``max_upload_bytes=...``) applied over
    ``limits``; uploads beyond ``spool_bytes`` are spooled to unlinked files in ``spool_dir``."""
    import anyio
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    from lusynth import __version__

    try:
        limits = dataclasses.replace(limits or ServeLimits(), **overrides)
    except TypeError as exc:
        raise InputError(f"create_app: {exc}; the limits are the fields of ServeLimits") from None
    loaded = model if isinstance(model, LoadedModel) else load_model(model, tracking_dir=tracking_dir)
    app = FastAPI(title="lusynth LUS frame classifier", version=__version__)
    app.state.model = loaded
    app.state.limits = limits
    busy = asyncio.Semaphore(limits.max_concurrent_predictions)  # binds to the serving loop on first use

    def error(status: int, message: str, *, close: bool = False) -> JSONResponse:
        # "connection: close" makes uvicorn drop a connection whose body was not read to its end
        return JSONResponse(status_code=status, content={"error": message}, headers={"connection": "close"} if close else None)

    def client_name(request: Request) -> str:
        return f"{request.client.host}:{request.client.port}" if request.client else "client"

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": app.state.model is not None}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        m: LoadedModel = app.state.model
        return {"source": m.public_source, "version": m.version, "sha256": m.sha256, "classes": m.classes,
                "positive_class": m.positive_class, "threshold": m.threshold, "image_size": m.image_size,
                "input": m.metadata.get("lusynth.input"), "preprocessing": json.loads(m.metadata.get("lusynth.preprocessing", "{}")),
                "max_upload_bytes": limits.max_upload_bytes, "max_batch": limits.max_batch,
                "max_image_pixels": limits.pixel_limit(m.image_size), "limits": dataclasses.asdict(limits),
                "model_metadata": public_metadata(m.metadata)}

    @app.post("/predict")
    async def predict_endpoint(request: Request) -> Any:
        t0 = time.perf_counter()
        m: LoadedModel = app.state.model
        try:
            body = await receive_body(request, max_bytes=limits.max_upload_bytes, timeout_s=limits.body_timeout_s,
                                      spool_bytes=limits.spool_bytes, spool_dir=spool_dir)
        except BadUpload as exc:
            if exc.status == 408:
                log.info("%s: %s", client_name(request), exc.message)
            return error(exc.status, exc.message, close=exc.close)
        except ClientGone as exc:
            log.info("%s: %s (POST /predict)", client_name(request), exc)
            return Response(status_code=400)  # never sent: the connection is gone
        try:
            async with busy:
                preds = await anyio.to_thread.run_sync(predict_uploads, m, request.headers.get("content-type", ""), body, limits)
        except BadUpload as exc:
            return error(exc.status, exc.message, close=exc.close)
        finally:
            body.close()
        return {"model": {"source": m.public_source, "version": m.version, "sha256": m.sha256}, "threshold": m.threshold,
                "predictions": preds, "seconds": time.perf_counter() - t0}

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # noqa: ARG001
        # the service stays up; the client learns it was our fault, not theirs
        return error(500, f"internal error: {type(exc).__name__}")

    return app
