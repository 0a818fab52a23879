"""Frame stores recorded as MLflow dataset inputs of a run, with their content digest and context."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lusynth.tracking.tracker import Tracker

DATASET_CONTEXTS = ("training", "synthetic", "holdout", "validation")


def log_frame_store_input(
    tracker: Tracker,
    store_path: str | os.PathLike[str],
    context: str = "training",
    *,
    name: str | None = None,
) -> str:
    """Record a frame store as an MLflow dataset input of the run; return its content digest.

    The dataset is an ``mlflow.data.meta_dataset.MetaDataset`` (source = the store's location,
    schema = the manifest's columns): the pixels stay where they are, the digest identifies them.
    MLflow's digest field holds 36 characters, so the full ``sha256:...`` is also an input tag
    (``lusynth.digest``), beside ``mlflow.data.context``.
    """
    if context not in DATASET_CONTEXTS:
        raise ValueError(f"context={context!r}: use one of {', '.join(DATASET_CONTEXTS)}")
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.types.schema import ColSpec, Schema

    from lusynth.data.framestore import open_store

    store = open_store(store_path)
    dataset = MetaDataset(  # type: ignore[abstract]  # mlflow leaves profile abstract
        source=_dataset_source(store.path),
        name=name or f"{store.kind}:{store.path.name}",
        digest=store.digest.removeprefix("sha256:")[:32],
        schema=Schema([ColSpec("string", c) for c in store.manifest.columns]),
    )
    counts = {"frames": len(store), "image_size": store.image_size, "classes": ",".join(store.classes)}
    tags = [InputTag("mlflow.data.context", context), InputTag("lusynth.digest", store.digest),
            *(InputTag(f"lusynth.{k}", str(v)) for k, v in counts.items())]
    tracker.log_inputs([DatasetInput(dataset._to_mlflow_entity(), tags=tags)])
    return store.digest


def _dataset_source(path: Path) -> Any:
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    # mlflow has no plain "local directory" source; an HTTP-style source with a file:// URI
    # keeps the location readable in the UI without pretending to be downloadable
    return HTTPDatasetSource(url=path.resolve().as_uri())
