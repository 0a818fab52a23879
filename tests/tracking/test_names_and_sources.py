"""Run names and dataset sources, pure: what the MLflow UI lists for a stage run."""

from __future__ import annotations

from pathlib import Path

import pytest

from lusynth.keys import Cell, GanKey
from lusynth.tracking import dataset_location, run_name


def test_run_names_are_stage_class_fraction_seed_with_the_fold_when_there_is_one() -> None:
    assert run_name("train_gan", GanKey("consolidation", 0.5, 1)) == "train_gan · consolidation · 0.5 · seed 1"
    assert run_name("train_gan", GanKey("consolidation", 0.5, 1, fold=2)) == "train_gan · consolidation · 0.5 · seed 1 · fold 2"
    assert run_name("train_classifier", Cell("real", 1.0, 3)) == "train_classifier · real · 1 · seed 3"
    assert run_name("train_classifier", Cell("real+synthetic", 0.25, 0, ratio=2, gan_seed=1)) == \
        "train_classifier · real+synthetic ×2 · 0.25 · seed 0 (GAN seed 1)"
    assert run_name("generate", [GanKey("a", 1.0), GanKey("b", 1.0)]) == "generate · a+b · 1 · seed 0"
    assert run_name("evaluate") == "evaluate"


def test_dataset_source_is_the_kfp_object_store_uri_the_dvc_address_or_the_directory(tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # KFP's launcher mounts s3://bucket/key at /s3/bucket/key (and minio:// at /minio/)
    assert dataset_location("/s3/bucket/run/ingest/frames") == "s3://bucket/run/ingest/frames"
    assert dataset_location("/minio/mlpipeline/v2/frames") == "minio://mlpipeline/v2/frames"
    store = tmp_path / "repo" / "data" / "frames"
    store.mkdir(parents=True)
    monkeypatch.delenv("LUSYNTH_DVC_REV", raising=False)
    assert dataset_location(store) == store.resolve().as_uri()
    (tmp_path / "repo" / ".dvc").mkdir()
    monkeypatch.setenv("LUSYNTH_DVC_REV", "abc123")
    assert dataset_location(store) == "dvc://data/frames@abc123"
