"""The evaluate stage: holdout metrics with CIs, the paper's table, fidelity and privacy audit, report.

Import from the module (:mod:`.params`, :mod:`.run`): this package imports nothing, so reading the
``evaluate`` parameters does not load torch.
"""
