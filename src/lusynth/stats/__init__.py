"""The experiment's statistics: one long table of patient-level scores in, verdicts out.

- :mod:`.scores`: the table (one row per fold, repeat, arm, fraction, GAN seed, classifier seed and
  test patient), patient aggregation and patient-level thresholds;
- :mod:`.bootstrap`: the class-stratified patient cluster bootstrap, shared by paired arms;
- :mod:`.inference`: estimates with intervals that include training variance, p-values, verdicts,
  the minimum detectable difference and Holm adjustment;
- :mod:`.questions`: the paper's questions (a) and (b) and the per-arm table, from the table.

Pure computation: no I/O. Every claim is checked by a simulation with a known answer (tests/stats).
"""
