"""The live run a stage logs to: :class:`Tracker` (metrics buffered, sent with ``log_batch``; what
MLflow cannot take kept in a spool) and :class:`NullTracker` for when tracking is off.

Losing the server never stops the stage: the first request that fails after MLflow's own HTTP
retries (:func:`~lusynth.tracking.client.configure_http_retries`) turns the tracker offline, one
warning line says so, and from then on every call only appends a record in memory, so training is
blocked at most once, for that retry budget. While offline the tracker asks ``/health`` (2 s
timeout) at most every ``_RECONNECT_S`` seconds and at the end; when the server answers again the
records go out in order and the run carries on live. Whatever is still held when the run ends is
written to the spool file of the stage's output (:mod:`lusynth.tracking.spool`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lusynth.tracking.client import is_unavailable, reachable, short_reason
from lusynth.tracking.spool import SPOOL_FILE, SpoolState, Uploader, now_ms, record, remove_spool, spool_path, write_spool

# metrics wait in a buffer until this many are pending (or this long has passed), then go out
# with log_batch: one request per batch, not per value, and the UI still follows a long run
_FLUSH_EVERY = 500
_FLUSH_S = 30.0
_RECONNECT_S = 60.0  # while offline: how often to ask whether the server is back


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:6000]


class Tracker:
    """A live MLflow run with buffered metrics that survives the server going away.
    Created by :func:`~lusynth.tracking.stage_run` / :func:`~lusynth.tracking.parent_run`.

    ``run_id`` is None while the run exists only in the spool (MLflow unreachable since the start);
    a sync creates it later.
    """

    def __init__(self, client: Any, uri: str, *, stage: str, out_dir: str | os.PathLike[str] | None) -> None:
        self.client = client
        self.uri = uri
        self.stage = stage
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_id: str | None = None
        self.artifact_uri = ""
        self.key = os.urandom(16).hex()  # this run's key in a spool
        self.offline = False
        self._lock = threading.RLock()  # the system-metrics thread logs too
        self._metrics: list[list[Any]] = []  # [key, value, timestamp ms, step], not sent yet
        self._last_flush = time.monotonic()
        self._held: list[dict[str, Any]] = []  # records not sent (offline), oldest first
        self._runs: dict[str, str] = {}  # spool key -> server run id, for this run and carried ones
        self._earlier: list[Path] = []  # spools of earlier runs whose records this tracker now holds
        self._header: dict[str, Any] = {}  # the run record: what a sync needs to create or find the run
        self._next_probe = 0.0
        self._warned = False

    # --- the run's life ---

    def adopt_earlier(self) -> None:
        """Upload what earlier runs of this output spooled, or hold it to spool again with this run's records."""
        from lusynth.tracking.spool import find_spools, pending

        if self.out_dir is None:
            return
        for path in find_spools([spool_path(self.out_dir)]):
            records, state = pending(path)
            if not records:
                remove_spool(path)
                continue
            self._held.extend(records)
            self._runs.update(state.runs)
            self._earlier.append(path)
        if self._held:
            n = len(self._held)
            try:
                sent = reachable(self.uri) and self._drain()
            except Exception as exc:  # a spool this lusynth cannot read must not stop the stage
                self._note(f"could not upload {', '.join(map(str, self._earlier))} ({short_reason(exc)}); "
                           "it is left for `lusynth tracking sync`")
                self._held, self._earlier = [], []
                return
            if sent:
                print(f"tracking: uploaded {n} records that an earlier run of {self.out_dir} could not log", file=sys.stderr, flush=True)
            else:
                self.offline = True

    def start(self, *, experiment: str, tags: Mapping[str, str], run_name: str, start_time: int | None = None) -> None:
        """Create the MLflow run, or, when MLflow is unreachable, a run record to create it at sync."""
        from lusynth.tracking.client import experiment_id

        header = record("run", self.key, experiment=experiment, tags=dict(tags), run_name=run_name,
                        start_time=start_time or now_ms(), tracking_uri=self.uri, stage=self.stage, run_id=None)
        with self._lock:
            if not self.offline and reachable(self.uri, timeout=5.0):
                try:
                    run = self.client.create_run(experiment_id(self.client, experiment, self.uri), start_time=header["start_time"],
                                                 tags=dict(tags), run_name=run_name)
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    self._go_offline(exc)
                else:
                    self.run_id, self.artifact_uri = run.info.run_id, run.info.artifact_uri
                    self._runs[self.key] = self.run_id
                    self._header = {**header, "run_id": self.run_id}
                    return
            else:
                self._go_offline(None)
            self._header = header
            self._held.append(header)

    def close(self, status: str) -> Path | None:
        """End the run as ``status`` (FINISHED / FAILED); never raises, so it never hides the stage's own
        error. Returns the spool file written, if anything had to be kept."""
        with self._lock:
            try:
                self._flush_metrics()
            except Exception as exc:  # refused by the server: the run still has to end
                self._note(f"MLflow refused metrics of {self.stage}: {short_reason(exc)}")
            try:
                self._send(record("end", self.key, status=status, end_time=now_ms()))
            except Exception as exc:
                self._note(f"MLflow refused to end run {self.run_id} of {self.stage}: {short_reason(exc)}")
            try:
                if self._held and reachable(self.uri):
                    self._drain()
            except Exception as exc:
                self._note(f"tracking records of {self.stage} could not be sent: {short_reason(exc)}")
            if not self._held:
                for old in self._earlier:
                    remove_spool(old)
                return None
            target = spool_path(self.out_dir if self.out_dir is not None else Path.cwd())
            try:
                write_spool(target, self._held, self._runs)
            except OSError as exc:
                self._note(f"could not write {target} ({exc}); {len(self._held)} tracking records of {self.stage} are lost")
                return None
            for old in self._earlier:
                if old.resolve() != target.resolve():
                    remove_spool(old)
            if not self._warned or target.name != SPOOL_FILE:
                self._note(f"tracking records of {self.stage} kept in {target}; upload them with `lusynth tracking sync {target}`")
            return target

    def require_live(self) -> str:
        """The server run id, for work that cannot be spooled (registering models); raises
        :class:`~lusynth.tracking.TrackingError` naming the server when the run exists only in the spool."""
        from lusynth.tracking.client import TrackingError

        if self.run_id is None:
            raise TrackingError(f"MLflow at {self.uri} was unreachable when {self.stage} started, and {self.stage} needs it; "
                                "start the server (or fix MLFLOW_TRACKING_URI) and run it again")
        return self.run_id

    # --- what a stage logs ---

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log a (nested) mapping of parameters; nested keys are joined with '.'."""
        flat: dict[str, str] = {}
        _flatten("", params, flat)
        self._send(record("params", self.key, params=flat))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values turned into strings)."""
        self._send(record("tags", self.key, tags={k: str(v) for k, v in tags.items()}))

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        """Buffer metrics; they are sent in batches (and at the end of the run)."""
        ts = now_ms()
        with self._lock:
            self._metrics.extend([k, float(v), ts, int(step)] for k, v in metrics.items() if v is not None)
            if len(self._metrics) >= _FLUSH_EVERY or time.monotonic() - self._last_flush >= _FLUSH_S:
                self._flush_metrics()

    def flush(self) -> None:
        """Send buffered metrics now (kept for later if MLflow is unreachable)."""
        with self._lock:
            self._flush_metrics()

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file or a directory."""
        self._send(record("artifact", self.key, path=str(Path(path).resolve()), artifact_path=artifact_path))

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store ``text`` as an artifact file."""
        self._send(record("text", self.key, text=text, file=artifact_file))

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Store ``obj`` as a JSON/YAML artifact file."""
        self._send(record("dict", self.key, obj=obj, file=artifact_file))

    def log_inputs(self, datasets: Sequence[Any]) -> None:
        """Record MLflow ``DatasetInput`` entities as inputs of the run."""
        from google.protobuf.json_format import MessageToDict

        self._send(record("inputs", self.key, datasets=[MessageToDict(d.to_proto()) for d in datasets]))

    # --- sending ---

    def _flush_metrics(self) -> None:
        self._last_flush = time.monotonic()
        while self._metrics:
            batch, self._metrics = self._metrics[:1000], self._metrics[1000:]
            self._send(record("metrics", self.key, metrics=batch))

    def _send(self, rec: dict[str, Any]) -> None:
        """Send ``rec`` now, or hold it while MLflow is unreachable (and send what is held once it is back)."""
        with self._lock:
            if self.offline and time.monotonic() >= self._next_probe:
                self._next_probe = time.monotonic() + _RECONNECT_S
                if reachable(self.uri):
                    self._drain()
            if self.offline:
                self._held.append(rec)
                return
            try:
                self._uploader().apply(rec)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                self._go_offline(exc)
                if self._header and all(r["id"] != self._header["id"] for r in self._held):
                    self._held.append(self._header)  # the spool names the run it belongs to
                self._held.append(rec)

    def _uploader(self) -> Uploader:
        return Uploader(self.client, self.uri, SpoolState(runs=self._runs), base=None)

    def _drain(self) -> bool:
        """Send the held records in order; True when all went out (the tracker is live again)."""
        up = self._uploader()
        try:
            up.upload(self._held)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return False
        finally:
            self._held = [r for r in self._held if r["id"] not in up.state.uploaded]
        for msg in up.rejected:
            self._note(f"MLflow refused a {msg}")
        if self.offline and self._warned:
            print(f"tracking: MLflow at {self.uri} answers again; the {sum(up.counts.values())} records {self.stage} held are sent",
                  file=sys.stderr, flush=True)
        self.offline = False
        if self.run_id is None and self.key in self._runs:
            self.run_id = self._runs[self.key]
            self._header = {**self._header, "run_id": self.run_id}
        return True

    def _go_offline(self, exc: BaseException | None) -> None:
        self.offline = True
        self._next_probe = time.monotonic() + _RECONNECT_S
        if self._warned:
            return
        why = f" ({short_reason(exc)})" if exc is not None else ""
        where = self.out_dir if self.out_dir is not None else Path.cwd()
        self._note(f"MLflow at {self.uri} is unreachable{why}; {self.stage} goes on and keeps what it cannot log in "
                   f"{spool_path(where)} for `lusynth tracking sync {where}` (or the next tracked run of that output)")
        self._warned = True

    def _note(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)


class NullTracker(Tracker):
    """What a stage logs to when tracking is off (``RunContext(track=False)``): accepts everything, sends nothing."""

    def __init__(self) -> None:
        super().__init__(client=None, uri="", stage="", out_dir=None)

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

    def log_inputs(self, datasets: Sequence[Any]) -> None:
        pass
