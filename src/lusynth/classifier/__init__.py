"""The frame classifier stage: arms x training fractions x seeds (the paper's experiment)."""

from lusynth.classifier.params import ARMS, ClassifierParams
from lusynth.classifier.train import ClassifierRun, LoadedClassifier, load_classifier, train_classifier

__all__ = ["ARMS", "ClassifierParams", "ClassifierRun", "LoadedClassifier", "load_classifier", "train_classifier"]
