"""HTTP serving of the exported classifier on onnxruntime (see :mod:`.app`)."""

from lusynth.serve.app import DEFAULT_MAX_BATCH, DEFAULT_MAX_UPLOAD_BYTES, LoadedModel, ModelIntegrityError, create_app, load_model, serve

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_UPLOAD_BYTES", "LoadedModel", "ModelIntegrityError", "create_app", "load_model", "serve"]
