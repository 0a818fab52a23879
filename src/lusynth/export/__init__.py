"""ONNX export of the classifier and the generators, with parity checks (:mod:`.onnx_export`), and
the export-register stage (:mod:`.stage`).

Import from the module: this package imports nothing, so reading the ``export`` parameters does not
load torch.
"""
