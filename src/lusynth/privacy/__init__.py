"""The privacy audit of synthetic data, for any generator (issue 13).

- :mod:`.stats`: exact binomial intervals, patient-level AUC inference, TPR at a fixed FPR, power;
- :mod:`.core`: :func:`run_audit` on feature arrays (memorisation of the unfiltered output,
  patient-level membership inference) and its decision;
- :mod:`.gate`: the gate on evidence (pass / fail / insufficient_evidence);
- :mod:`.params`: the ``audit`` profile section;
- :mod:`.simulate`: cohorts and generators with a known answer (tests, benchmark).

Pure computation throughout: no file is opened here.

Import from the module: this package imports nothing, so reading the ``audit`` parameters
does not load scipy.
"""
