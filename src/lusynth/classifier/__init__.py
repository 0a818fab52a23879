"""The frame classifier stage: arms x training fractions x seeds (the paper's experiment).

- :mod:`.params`: the ``classifier`` profile section and the arms;
- :mod:`.run`: :class:`~lusynth.classifier.run.ClassifierRun`, the stage's artefact (no torch);
- :mod:`.train`: training (:func:`~lusynth.classifier.train.train_classifier`) and
  :func:`~lusynth.classifier.train.load_classifier`.

Import from the module: this package imports nothing, so reading a parameter or a record does
not load torch (a KFP task that plans or is served from the stage cache stays light).
"""
