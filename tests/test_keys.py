"""Artefact keys compare exactly: a fraction read from JSON, a flag or a KFP parameter is one key."""

from __future__ import annotations

import dataclasses

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
    grid = ExperimentParams(fractions=(1.0, 0.5), arms=("real", "synthetic"), seeds=(0, 1), folds=1)
    assert plan_classifiers(grid) == [Cell(a, f, s) for f in (0.5, 1.0) for a in ("real", "synthetic") for s in (0, 1)]
    assert plan_gans(["a", "b"], [0.5, 1.0], grid) == [GanKey("a", 0.5), GanKey("b", 0.5), GanKey("a", 1.0), GanKey("b", 1.0)]
    with pytest.raises(InputError, match=r"training fraction\(s\) \[0.5\] were not prepared at ingest"):
        plan_gans(["a"], [1.0], grid)


def test_gan_seeds_and_ratios_fan_out_only_the_arms_that_read_synthetic_frames() -> None:
    grid = ExperimentParams(fractions=(1.0,), seeds=(0, 1), gan_seeds=(0, 3), synthetic_ratios=(2, 0.5), folds=1)
    cells = plan_classifiers(grid)
    by_arm = {a: [c for c in cells if c.arm == a] for a in grid.arms}
    assert by_arm["real"] == [Cell("real", 1.0, 0), Cell("real", 1.0, 1)]
    assert by_arm["real+aug"] == [Cell("real+aug", 1.0, 0), Cell("real+aug", 1.0, 1)]
    # crossed: every classifier seed with every GAN seed, and real+synthetic also over the ratio sweep
    assert by_arm["synthetic"] == [Cell("synthetic", 1.0, s, gan_seed=g) for s in (0, 1) for g in (0, 3)]
    assert by_arm["real+synthetic"] == [Cell("real+synthetic", 1.0, s, ratio=r, gan_seed=g) for s in (0, 1) for r in (0.5, 2.0)
                                        for g in (0, 3)]
    assert len(set(cells)) == len(cells)
    paired = plan_classifiers(ExperimentParams(fractions=(1.0,), arms=("synthetic",), seeds=(0, 1, 2), gan_seeds=(0, 3),
                                               seed_design="paired", folds=1))
    assert [(c.seed, c.gan_seed) for c in paired] == [(0, 0), (1, 3), (2, 0)]
    assert plan_gans(["a"], [1.0], grid) == [GanKey("a", 1.0, 0), GanKey("a", 1.0, 3)]
    with pytest.raises(ValueError, match="experiment.gan_seeds"):
        ExperimentParams(gan_seeds=(1, 1))
    with pytest.raises(ValueError, match="experiment.seed_design"):
        ExperimentParams(seed_design="nested")


def test_every_outer_split_is_a_fan_out_dimension_of_gans_and_classifiers() -> None:
    grid = ExperimentParams(fractions=(0.5, 1.0), arms=("real", "synthetic"), seeds=(0,), gan_seeds=(0, 1), folds=3, repeats=2)
    assert grid.n_splits == 6 and ExperimentParams(folds=1).n_splits == 1
    one = ExperimentParams(fractions=(0.5, 1.0), arms=("real", "synthetic"), seeds=(0,), gan_seeds=(0, 1), folds=1)
    gans, cells = plan_gans(["a", "b"], [0.5, 1.0], grid, store_splits=6), plan_classifiers(grid)
    # the same grid in every outer split, and nothing else
    assert sorted(gans) == sorted(dataclasses.replace(k, fold=f) for f in range(6) for k in plan_gans(["a", "b"], [0.5, 1.0], one))
    assert sorted(cells) == sorted(dataclasses.replace(c, fold=f) for f in range(6) for c in plan_classifiers(one))
    assert len(set(gans)) == len(gans) and len(set(cells)) == len(cells)
    with pytest.raises(InputError, match=r"6 outer split\(s\), but the frame store was prepared for 3"):
        plan_gans(["a"], [0.5, 1.0], grid, store_splits=3)
    for bad in ({"folds": 0}, {"repeats": 0}, {"folds": 1, "repeats": 2}, {"inner_val_share": 1.0}):
        with pytest.raises(ValueError, match="experiment."):
            ExperimentParams(**bad)  # type: ignore[arg-type]


def test_keys_round_trip_through_their_records() -> None:
    c = Cell("real+synthetic", "0.5", 2, ratio="1.50", gan_seed=1, fold=3)
    assert Cell.from_dict(c.as_dict()) == c and str(c) == "real+synthetic@0.5#2x1.5~g1~k3"
    assert Cell.from_dict({"arm": "real", "fraction": 1, "seed": 0}) == Cell("real", 1.0, 0)  # a record from before the fields
    g = GanKey("a", 1, gan_seed=2, fold=1)
    assert GanKey.from_dict(g.as_dict()) == g and GanKey.from_dict({"label": "a", "fraction": 1}) == GanKey("a", 1.0)
    for bad in (-1, 1.5, "x"):
        with pytest.raises(InputError, match="gan_seed"):
            GanKey("a", 1, gan_seed=bad)
    with pytest.raises(InputError, match="ratio"):
        Cell("real+synthetic", 1, 0, ratio=-1)
