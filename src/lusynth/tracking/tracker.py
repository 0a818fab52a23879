"""The live run a stage logs to: :class:`Tracker` (metrics buffered, sent with ``log_batch``) and
:class:`NullTracker` for when tracking is off."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# metrics wait in a buffer until this many are pending, then go out with log_batch (not one request per value)
_FLUSH_EVERY = 500


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:6000]


class Tracker:
    """A live MLflow run with buffered metrics. Created by :func:`stage_run` / :func:`parent_run`."""

    def __init__(self, client: Any, run_id: str, artifact_uri: str) -> None:
        self.client = client
        self.run_id = run_id
        self.artifact_uri = artifact_uri
        self._metrics: list[Any] = []

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log a (nested) mapping of parameters; nested keys are joined with '.'."""
        from mlflow.entities import Param

        flat: dict[str, str] = {}
        _flatten("", params, flat)
        items = [Param(k, v) for k, v in sorted(flat.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values turned into strings)."""
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        """Buffer metrics; they are sent in batches (and at the end of the run)."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            if v is None:
                continue
            self._metrics.append(Metric(k, float(v), ts, int(step)))
        if len(self._metrics) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics now."""
        while self._metrics:
            batch, self._metrics = self._metrics[:1000], self._metrics[1000:]
            self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file or a directory."""
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(p), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store ``text`` as an artifact file."""
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Store ``obj`` as a JSON/YAML artifact file."""
        self.client.log_dict(self.run_id, obj, artifact_file)


class NullTracker(Tracker):
    """What a stage logs to when tracking is off (``RunContext(track=False)``): accepts everything, sends nothing."""

    def __init__(self) -> None:
        super().__init__(client=None, run_id=None, artifact_uri="")  # type: ignore[arg-type]

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        pass

    def flush(self) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        pass
