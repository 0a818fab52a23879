"""The frame classifier stage: arms x training fractions x seeds (the paper's experiment)."""

from lusynth.classifier.params import ARMS, ClassifierParams
from lusynth.classifier.train import ClassifierResult, LoadedClassifier, load_classifier, train_classifier

__all__ = ["ARMS", "ClassifierParams", "ClassifierResult", "LoadedClassifier", "load_classifier", "train_classifier"]
