"""ONNX export of the classifier and the generators, with parity checks (see :mod:`.onnx_export`)."""

from lusynth.export import onnx_export as _onnx_export
from lusynth.export.onnx_export import *  # noqa: F403 - the package re-exports the module's public names

__all__ = list(_onnx_export.__all__)
