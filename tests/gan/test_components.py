"""Pieces of the GAN stage: checkpoint selection rule, DiffAugment, EMA, parameter validation, CLI."""

from __future__ import annotations

import pytest
import torch

from lusynth.gan.diffaugment import diff_augment, parse_policy
from lusynth.gan.ema import EMA
from lusynth.gan.params import GanParams, GenerateParams
from lusynth.gan.selection import choose
from lusynth.params import stage_params


def _entry(step: int, nn1: float, mmd: float, mem: float) -> dict:
    return {"step": step, "epoch": step // 10, "nn1_embed": nn1, "mmd_embed": mmd, "memorisation_rate": mem,
            "checkpoint": f"checkpoints/step_{step:08d}.pt"}


def test_selection_prefers_1nn_near_half_among_non_memorising_checkpoints() -> None:
    history = [
        _entry(0, 0.50, 0.0, 0.0),  # untrained: never a candidate
        _entry(10, 0.90, 0.3, 0.0),
        _entry(20, 0.55, 0.2, 0.20),  # best 1-NN but memorises
        _entry(30, 0.70, 0.2, 0.01),
        _entry(40, 0.70, 0.1, 0.02),  # ties on 1-NN with step 30, lower MMD
    ]
    c = choose(history, rule="nn1_embed", max_memorisation_rate=0.05)
    assert c["entry"]["step"] == 40 and c["eligible"]
    c = choose(history, rule="nn1_embed", max_memorisation_rate=0.5)
    assert c["entry"]["step"] == 20
    c = choose([_entry(10, 0.6, 0.1, 0.3), _entry(20, 0.5, 0.1, 0.2)], rule="nn1_embed", max_memorisation_rate=0.05)
    assert not c["eligible"] and c["entry"]["step"] == 20 and "no checkpoint" in c["reason"]
    assert choose(history, rule="last", max_memorisation_rate=0.05)["entry"]["step"] == 40
    with pytest.raises(ValueError, match="at least one epoch"):
        choose(history[:1], rule="nn1_embed", max_memorisation_rate=0.05)


def test_mmd_rule_takes_the_lowest_mmd_among_non_memorising_checkpoints_ties_to_the_later() -> None:
    history = [
        _entry(0, 0.50, 0.0, 0.0),  # untrained: never a candidate, though its MMD^2 is lowest
        _entry(10, 0.55, 0.30, 0.0),  # best 1-NN, but not the lowest MMD^2
        _entry(20, 0.90, 0.05, 0.20),  # lowest MMD^2 but memorises
        _entry(30, 0.90, 0.10, 0.01),
        _entry(40, 0.95, 0.10, 0.02),  # ties with step 30: the later one
        _entry(50, 0.80, 0.20, 0.0),
    ]
    c = choose(history, rule="mmd_embed", max_memorisation_rate=0.05)
    assert c["entry"]["step"] == 40 and c["eligible"] and c["reason"].startswith("mmd_embed = 0.1000")
    assert choose(history, rule="nn1_embed", max_memorisation_rate=0.05)["entry"]["step"] == 10
    assert choose(history, rule="mmd_embed", max_memorisation_rate=0.5)["entry"]["step"] == 20
    assert GanParams(selection="mmd_pixels").selection == "mmd_pixels"


def test_diffaugment_is_differentiable_shape_preserving_and_off_when_empty() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 16, 16, requires_grad=True)
    assert diff_augment(x, ()) is x
    y = diff_augment(x, parse_policy("color, translation,cutout"))
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    # translation only moves pixels (zeros come in at the border): no new values
    torch.manual_seed(1)
    z = torch.arange(1, 17.0).view(1, 1, 4, 4).repeat(8, 1, 1, 1)
    t = diff_augment(z, ("translation",))
    assert set(t.unique().tolist()) <= set(range(0, 17))
    c = diff_augment(torch.ones(8, 1, 16, 16), ("cutout",))
    assert ((c == 0).float().mean(dim=(1, 2, 3)) >= 25 / 256).all()  # every image loses (at least a corner of) an 8x8 square


def test_ema_tracks_weights_and_copies_buffers() -> None:
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(m, 0.5)
    before = ema.shadow[0].weight.clone()
    with torch.no_grad():
        m[0].weight.add_(1.0)
    m(torch.randn(4, 2))  # updates BN running stats
    ema.update(m)
    assert torch.allclose(ema.shadow[0].weight, before + 0.5)
    assert torch.equal(ema.shadow[1].running_mean, m[1].running_mean)


def test_params_validate_with_actionable_messages() -> None:
    with pytest.raises(ValueError, match="diffaugment"):
        GanParams(diffaugment="rotate")
    with pytest.raises(ValueError, match="batch_size"):
        GanParams(batch_size=1)
    with pytest.raises(ValueError, match="which"):
        GenerateParams(which="best")
    paper = stage_params("gan", "paper")
    assert (paper.ngf, paper.ndf, paper.batch_size, paper.epochs, paper.lr_g, paper.lr_d) == (64, 64, 16, 200, 1e-5, 5e-6)
    assert paper.diffaugment == "" and paper.ema_decay == 0.0  # the paper's loop, no improvements
    assert stage_params("gan", "demo") == GanParams()


def test_cli_commands_are_registered(tmp_path, capsys) -> None:
    from typer.testing import CliRunner

    from lusynth.cli import app, main

    out = CliRunner().invoke(app, ["--help"]).output
    assert "train-gan" in out and "generate" in out and "export-png" in out
    rc = main(["train-gan", "--frames", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "x"), "--label", "a", "--fraction", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "nonexistent: not a" in err and "Traceback" not in err, err
