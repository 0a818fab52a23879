"""Artefact keys compare exactly: a fraction read from JSON, a flag or a KFP parameter is one key."""

from __future__ import annotations

import pytest

from lusynth.errors import InputError
from lusynth.experiment import ExperimentParams, plan_classifiers, plan_gans
from lusynth.keys import Cell, GanKey, fraction


def test_fractions_are_canonical() -> None:
    assert fraction("0.5") == fraction(0.5000000001) == 0.5
    assert {GanKey("a", 1), GanKey("a", 1.0), GanKey("a", "1")} == {GanKey("a", 1.0)}
    for bad in (0, 1.5, "x", None):
        with pytest.raises(InputError, match="fraction"):
            fraction(bad)


def test_the_grid_is_planned_once_from_the_experiment_section() -> None:
    grid = ExperimentParams(fractions=(1.0, 0.5), arms=("real", "synthetic"), seeds=(0, 1))
    assert plan_classifiers(grid) == [Cell(a, f, s) for f in (0.5, 1.0) for a in ("real", "synthetic") for s in (0, 1)]
    assert plan_gans(["a", "b"], [0.5, 1.0], grid) == [GanKey("a", 0.5), GanKey("b", 0.5), GanKey("a", 1.0), GanKey("b", 1.0)]
    with pytest.raises(InputError, match=r"training fraction\(s\) \[0.5\] were not prepared at ingest"):
        plan_gans(["a"], [1.0], grid)
