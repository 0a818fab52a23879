"""The evaluate stage: holdout metrics with CIs, the paper's table, fidelity and privacy audit, report."""

from lusynth.evaluate.params import EvaluateParams
from lusynth.evaluate.run import Evaluation, evaluate

__all__ = ["EvaluateParams", "Evaluation", "evaluate"]
