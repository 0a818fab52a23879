"""The export stage's record (export.json) as a typed artefact: written and read back, and a clear
error where there is none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lusynth.errors import InputError
from lusynth.export.stage import ExportedFile, ExportedModels
from lusynth.registry import RegisteredVersion


def _exported(path: Path) -> ExportedModels:
    clf = ExportedFile("classifier-real.onnx", "a" * 64, "dynamo", 18, 1e-7, 1e-4, "/runs/clf-real", val_auc=0.9)
    gen = ExportedFile("generator-b.onnx", "b" * 64, "torchscript", 18, 1.0, 1, "/runs/gan-b")
    version = RegisteredVersion("lusynth-lus-classifier", "3", "champion", "first", ["arm-real", "champion"], "a" * 64,
                                "models:/lusynth-lus-classifier/3")
    return ExportedModels(path, "real", "run-1", {"real": clf}, {"b": gen}, [version])


def test_save_then_load_gives_the_same_record(tmp_path: Path) -> None:
    exported = _exported(tmp_path)
    exported.save(tmp_path)
    assert ExportedModels.load(tmp_path) == exported
    doc = json.loads((tmp_path / "export.json").read_text())
    assert set(doc) == {"nominee_arm", "run_id", "classifiers", "generators", "registered"}
    assert "val_auc" in doc["classifiers"]["real"] and "val_auc" not in doc["generators"]["b"]
    assert doc["registered"][0]["model_uri"] == "models:/lusynth-lus-classifier/3"


def test_load_without_an_export_names_the_directory_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="lusynth export") as exc:
        ExportedModels.load(tmp_path)
    assert str(tmp_path) in str(exc.value)
