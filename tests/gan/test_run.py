"""GanRun, the train-gan artefact: saved and loaded back unchanged, under the file and key names
other stages and older directories use; a missing directory says how to make it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lusynth.errors import InputError
from lusynth.gan.run import GanRun
from lusynth.keys import GanKey

# gan.json's keys as train-gan has always written them (readers outside lusynth rely on them)
GAN_JSON_KEYS = {
    "label", "fraction", "gan_seed", "fold", "generator", "params", "config", "device", "threads", "frames_dir", "frames_digest", "mlflow_run_id",
    "run_id", "n_train", "n_val", "n_holdout", "steps", "epochs", "chosen", "selection", "params_g", "params_d",
    "flops_per_image", "images_per_second_this_session", "resumed",
}


def _run(path: Path, **overrides: object) -> GanRun:
    history = [{"step": 0, "epoch": 0, "nn1_embed": 1.0, "mmd_embed": 0.5},
               {"step": 10, "epoch": 1, "nn1_embed": 0.75, "mmd_embed": 0.25, "checkpoint": "checkpoints/step_00000010.pt"}]
    values: dict = dict(
        path=path, key=GanKey("consolidation", 0.5), run_id="abc123", frames_digest="sha256:f", frames_dir="/data/frames",
        device="cpu", threads=2, params={"lr_g": 2e-4, "seed": 0}, config={"image_size": 64, "nz": 16},
        n_train=40, n_val=12, n_holdout=12, steps=10, epochs=1,
        chosen={"checkpoint": "checkpoints/step_00000010.pt", "step": 10, "epoch": 1, "metrics": {"nn1_embed": 0.75}},
        selection={"rule": "nn1_embed", "max_memorisation_rate": 0.05, "inputs": "fidelity_history.json"},
        params_g=1000, params_d=900, flops_per_image={"g_forward": 2.0, "d_forward": 1.0, "train_step": 9.0}, images_per_second=12.5, resumed=True,
        mirror={"uri": "s3://b/p", "restored": True, "pushes": 1}, history=history,
    )
    values.update(overrides)
    return GanRun(**values)


def test_save_then_load_gives_the_same_run(tmp_path: Path) -> None:
    run = _run(tmp_path / "gan", train_seconds=3.5)
    (tmp_path / "gan").mkdir()
    run.save(tmp_path / "gan")
    back = GanRun.load(tmp_path / "gan")
    assert back.train_seconds is None  # this session's time is not part of the artefact
    back.train_seconds = run.train_seconds
    assert back == run
    assert (back.label, back.fraction, back.mlflow_run_id) == ("consolidation", 0.5, "abc123")


def test_saved_files_keep_their_names_and_keys(tmp_path: Path) -> None:
    run = _run(tmp_path)
    run.save()
    summary = json.loads((tmp_path / "gan.json").read_text())
    assert set(summary) == GAN_JSON_KEYS | {"mirror"}
    assert summary["mlflow_run_id"] == summary["run_id"] == "abc123"
    assert summary["images_per_second_this_session"] == 12.5 and summary["chosen"]["step"] == 10
    assert json.loads((tmp_path / "fidelity_history.json").read_text()) == run.history
    _run(tmp_path, mirror={}).save()  # no mirror: no key, as before
    assert set(json.loads((tmp_path / "gan.json").read_text())) == GAN_JSON_KEYS


def test_a_minimal_gan_json_loads_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "gan.json").write_text(json.dumps({"label": "a", "fraction": 1, "run_id": None}))
    run = GanRun.load(tmp_path)
    assert run.key == GanKey("a", 1.0) and run.run_id is None and run.history == [] and run.chosen == {}


def test_a_directory_without_gan_json_says_how_to_make_it(tmp_path: Path) -> None:
    missing = tmp_path / "not-trained"
    assert not GanRun.exists(missing)
    with pytest.raises(InputError) as err:
        GanRun.load(missing)
    msg = str(err.value)
    assert str(missing) in msg and "gan.json" in msg and f"lusynth train-gan --out {missing}" in msg and "--resume" in msg
