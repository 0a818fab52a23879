"""Frame stores recorded as MLflow dataset inputs of a run: name, content digest, where the data lives, context.

Where the data lives (the dataset's *source*), most durable first:

- a KFP task's artifact, read through the launcher's mount (``/s3/...``, ``/minio/...``, ``/gcs/...``):
  the object-store URI KFP wrote it to (``s3://bucket/...``), converted by KFP's own mapping;
- a DVC-tracked output (``LUSYNTH_DVC_REV`` set and the store inside a DVC repository):
  ``dvc://<path in the repository>@<rev>``, the address ``lusynth ingest`` itself accepts;
- otherwise the local directory (``file://...``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lusynth.tracking.lineage import DVC_REV_ENV, _resolved
from lusynth.tracking.tracker import NullTracker, Tracker

DATASET_CONTEXTS = ("training", "synthetic", "holdout", "validation")
#: MLflow's dataset digest column holds 36 characters: the first 32 hex digits of the store's sha256
_DIGEST_CHARS = 32


def dataset_location(path: str | os.PathLike[str]) -> str:
    """Where the frame store at ``path`` lives, as a URI (see the module docstring for the order)."""
    p = Path(path)
    try:
        from kfp.dsl.types.artifact_types import convert_local_path_to_remote_path

        remote = convert_local_path_to_remote_path(str(p))
        if remote != str(p):
            return remote
    except ImportError:  # kfp is a dependency; a trimmed serving image may lack it
        pass
    rev = _resolved(os.environ.get(DVC_REV_ENV))
    root = _dvc_root(p.resolve())
    if rev and root is not None:
        return f"dvc://{p.resolve().relative_to(root).as_posix()}@{rev}"
    return p.resolve().as_uri()


def _dvc_root(path: Path) -> Path | None:
    for d in (path, *path.parents):
        if (d / ".dvc").is_dir():
            return d
    return None


def dataset_name(store: Any) -> str:
    """The MLflow dataset name of a frame store: its kind and directory name (``real:frames``)."""
    return f"{store.kind}:{store.path.name}"


def dataset_digest(store: Any) -> str:
    """The MLflow dataset digest of a frame store: the first 32 hex digits of its content sha256."""
    return str(store.digest).removeprefix("sha256:")[:_DIGEST_CHARS]


def log_frame_store_input(
    tracker: Tracker,
    store: Any,
    context: str = "training",
    *,
    name: str | None = None,
) -> str:
    """Record a frame store (a :class:`~lusynth.data.framestore.FrameStore` or its directory) as an
    MLflow dataset input of the run; return its content digest.

    The dataset is an ``mlflow.data.meta_dataset.MetaDataset``: source = where the store lives
    (:func:`dataset_location`), schema = the manifest's columns; the pixels stay where they are,
    the digest identifies them. The full ``sha256:...`` is also an input tag (``lusynth.digest``),
    beside ``mlflow.data.context``. It goes through :meth:`Tracker.log_inputs`, so it is spooled
    like every other record when MLflow is unreachable.
    """
    if context not in DATASET_CONTEXTS:
        raise ValueError(f"context={context!r}: use one of {', '.join(DATASET_CONTEXTS)}")
    from lusynth.data.framestore import FrameStore, open_store

    store = store if isinstance(store, FrameStore) else open_store(store)
    if isinstance(tracker, NullTracker):  # tracking off: nothing to record, and no mlflow import
        return str(store.digest)
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.types.schema import ColSpec, Schema

    dataset = MetaDataset(  # type: ignore[abstract]  # mlflow leaves profile abstract
        source=_source(dataset_location(store.path)),
        name=name or dataset_name(store),
        digest=dataset_digest(store),
        schema=Schema([ColSpec("string", c) for c in store.manifest.columns]),
    )
    counts = {"frames": len(store), "image_size": store.image_size, "classes": ",".join(store.classes)}
    tags = [InputTag("mlflow.data.context", context), InputTag("lusynth.digest", store.digest),
            *(InputTag(f"lusynth.{k}", str(v)) for k, v in counts.items())]
    tracker.log_inputs([DatasetInput(dataset._to_mlflow_entity(), tags=tags)])
    return str(store.digest)


def _source(uri: str) -> Any:
    """MLflow's own source for the URI's scheme (s3, gs, file, ...); an :class:`UriDatasetSource` for
    the schemes MLflow does not know (KFP's ``minio://``, ``dvc://``)."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source

    try:
        with warnings.catch_warnings():  # file URIs match two equal local sources: MLflow warns and takes the first
            warnings.simplefilter("ignore", UserWarning)
            return resolve_dataset_source(uri)
    except Exception:  # MlflowException: no resolver for this scheme
        return _uri_source_class()(uri)


_URI_SOURCE: Any = None


def _uri_source_class() -> Any:
    """A dataset source that only names a URI (type = its scheme); built on first use so that
    importing :mod:`lusynth.tracking` does not import mlflow."""
    global _URI_SOURCE
    if _URI_SOURCE is not None:
        return _URI_SOURCE
    from mlflow.data.dataset_source import DatasetSource

    class UriDatasetSource(DatasetSource):
        """Where a dataset lives when MLflow has no source type for the scheme; not loadable by MLflow."""

        def __init__(self, uri: str) -> None:
            self.uri = uri

        @staticmethod
        def _get_source_type() -> str:
            return "uri"

        def load(self, **kwargs: Any) -> Any:
            raise NotImplementedError(f"{self.uri}: fetch it with its own tool (dvc, an S3 client)")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> Any:
            return cls(str(raw_source))

        def to_dict(self) -> dict[str, Any]:
            return {"uri": self.uri}

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> Any:
            return cls(str(source_dict["uri"]))

    _URI_SOURCE = UriDatasetSource
    return _URI_SOURCE
