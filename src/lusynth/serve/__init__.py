"""HTTP serving of the exported classifier on onnxruntime (see :mod:`.app`; limits in :mod:`.limits`)."""

from lusynth.serve.app import DEFAULT_MAX_BATCH, DEFAULT_MAX_UPLOAD_BYTES, LoadedModel, ModelIntegrityError, create_app, load_model
from lusynth.serve.limits import ServeLimits
from lusynth.serve.server import serve, server_config

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_UPLOAD_BYTES", "LoadedModel", "ModelIntegrityError", "ServeLimits", "create_app",
           "load_model", "serve", "server_config"]
