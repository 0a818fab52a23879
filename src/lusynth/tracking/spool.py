"""What a run could not send to MLflow: the spool file beside a stage's outputs, and uploading it.

A :class:`~lusynth.tracking.tracker.Tracker` turns every call (params, metrics, tags, artifacts,
dataset inputs, the run's end) into a record and sends it at once; while MLflow is unreachable it
keeps the records instead and, when the run ends, writes them to ``<out>/tracking-spool.jsonl``
(one JSON record a line; ``<out>.tracking-spool.jsonl`` beside it when the stage ended without an
output directory). Records carry what MLflow needs to replay them later: metric steps and
timestamps, the run's experiment, tags and start time, its intended end status, artifact paths
(relative to the spool when inside it).

:func:`sync` (``lusynth tracking sync``, and the next tracked run of the same output) uploads the
records in order with the same code the live run uses (:class:`Uploader`). A run that never
existed on the server is created then, tagged ``lusynth.spool_run``; an existing one is continued.
Progress is written after every record to ``tracking-spool.state.json``, so an interrupted sync
resumes where it stopped and a repeated one sends nothing twice; a fully uploaded spool is removed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lusynth.atomic import atomic_write_text, dumps_json
from lusynth.tracking.client import TrackingError, configure_http_retries, experiment_id, is_unavailable, reachable, short_reason

SPOOL_FILE = "tracking-spool.jsonl"
STATE_FILE = "tracking-spool.state.json"
SPOOL_TAG = "lusynth.spool_run"  # on a run created by a sync: the spool's key for it, so a run is never created twice

_PARAMS_PER_BATCH = 100  # MLflow's log_batch limits: 100 params, 1000 metrics per request
_METRICS_PER_BATCH = 1000


def record(op: str, run: str, **fields: Any) -> dict[str, Any]:
    """One spool record: ``op`` (run, params, metrics, tags, artifact, text, dict, inputs, end) of
    the run whose spool key is ``run``; ``id`` identifies the record across syncs."""
    return {"id": uuid.uuid4().hex, "op": op, "run": run, **fields}


def now_ms() -> int:
    """MLflow's timestamps: milliseconds since the epoch."""
    return int(time.time() * 1000)


def spool_path(out_dir: str | os.PathLike[str]) -> Path:
    """Where a run of the stage writing ``out_dir`` spools: inside it, or beside it when it does not exist."""
    out = Path(out_dir)
    return out / SPOOL_FILE if out.is_dir() else out.with_name(f"{out.name}.{SPOOL_FILE}")


def _state_path(spool: Path) -> Path:
    return spool.with_name(spool.name.removesuffix(SPOOL_FILE) + STATE_FILE)


def find_spools(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The spool files in (or beside) each of ``paths``, searched recursively; a spool file is taken as is."""
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if p.is_file() and p.name.endswith(SPOOL_FILE):
            found[p] = None
            continue
        beside = p.with_name(f"{p.name}.{SPOOL_FILE}")
        if beside.is_file():
            found[beside] = None
        if p.is_dir():
            for q in sorted(p.rglob(f"*{SPOOL_FILE}")):
                found[q] = None
    return list(found)


@dataclass
class SpoolState:
    """What a sync has done so far: the records uploaded and the server run id of each spool key."""

    uploaded: set[str] = field(default_factory=set)
    runs: dict[str, str] = field(default_factory=dict)


def read_spool(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], SpoolState]:
    """The records of a spool file and its sync state (a torn last line, from a crash, is skipped)."""
    path = Path(path)
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "op" in rec and "run" in rec:
            records.append(rec)
    state = SpoolState()
    try:
        raw = json.loads(_state_path(path).read_text())
        state = SpoolState(set(raw.get("uploaded", [])), dict(raw.get("runs", {})))
    except (OSError, ValueError):
        pass
    return records, state


def pending(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], SpoolState]:
    """The records of a spool not uploaded yet, and the state."""
    records, state = read_spool(path)
    return [r for r in records if r["id"] not in state.uploaded], state


def write_spool(path: Path, records: Sequence[dict[str, Any]], runs: dict[str, str]) -> None:
    """Write ``records`` as the spool at ``path`` (artifact paths inside its folder made relative) and
    a fresh state that knows the server run ids in ``runs``."""
    base = path.parent.resolve()
    lines = []
    for rec in records:
        if rec["op"] == "artifact":
            p = Path(rec["path"])
            if p.is_absolute() and (p == base or base in p.parents):
                rec = {**rec, "path": p.relative_to(base).as_posix() or "."}
        lines.append(json.dumps(rec, sort_keys=True, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + "\n")
    atomic_write_text(_state_path(path), dumps_json({"uploaded": [], "runs": runs}))


def remove_spool(path: Path) -> None:
    """Delete a spool and its state (everything in it reached the server)."""
    path.unlink(missing_ok=True)
    _state_path(path).unlink(missing_ok=True)


class Uploader:
    """Sends spool records to MLflow in order: what a live run does record by record and what a sync
    does with a spool file. Raises on the first failure; ``state`` says how far it got."""

    def __init__(self, client: Any, uri: str, state: SpoolState, *, base: Path | None = None,
                 save: Callable[[SpoolState], None] | None = None) -> None:
        self.client, self.uri, self.state, self.base, self._save = client, uri, state, base, save
        self.counts: Counter[str] = Counter()  # records sent, by op
        self.rejected: list[str] = []  # records the server refused (4xx): skipped, never retried
        self.ended: dict[str, str] = {}  # server run id -> the status it was ended with

    def upload(self, records: Iterable[dict[str, Any]]) -> None:
        """Send each record not sent before; raise on an unreachable server (what was sent stays sent)."""
        for rec in records:
            if rec["id"] in self.state.uploaded:
                continue
            try:
                self.apply(rec)
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                # the server refuses it and always will: say so, do not block the records after it
                self.rejected.append(f"{rec['op']} record: {short_reason(exc)}")
            self.state.uploaded.add(rec["id"])
            self.counts[rec["op"]] += 1
            if self._save is not None:
                self._save(self.state)

    def run_id(self, key: str) -> str:
        """The server run id of spool key ``key``."""
        try:
            return self.state.runs[key]
        except KeyError:
            raise TrackingError(f"spool record of run {key} comes before the run's own record; the spool is damaged") from None

    def apply(self, rec: dict[str, Any]) -> None:
        """Send one record."""
        from mlflow.entities import Metric, Param, RunTag

        op, client = rec["op"], self.client
        if op == "run":
            self.state.runs[rec["run"]] = self._run(rec)
            return
        run_id = self.run_id(rec["run"])
        if op == "params":
            items = [Param(k, str(v)) for k, v in sorted(rec["params"].items())]
            for i in range(0, len(items), _PARAMS_PER_BATCH):
                client.log_batch(run_id, params=items[i : i + _PARAMS_PER_BATCH])
        elif op == "tags":
            client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in rec["tags"].items()])
        elif op == "metrics":
            metrics = [Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in rec["metrics"]]
            for i in range(0, len(metrics), _METRICS_PER_BATCH):
                client.log_batch(run_id, metrics=metrics[i : i + _METRICS_PER_BATCH])
        elif op == "artifact":
            p = Path(rec["path"])
            if not p.is_absolute() and self.base is not None:
                p = self.base / p
            if p.is_dir():
                client.log_artifacts(run_id, str(p), rec.get("artifact_path"))
            else:
                client.log_artifact(run_id, str(p), rec.get("artifact_path"))
        elif op == "text":
            client.log_text(run_id, rec["text"], rec["file"])
        elif op == "dict":
            client.log_dict(run_id, rec["obj"], rec["file"])
        elif op == "inputs":
            from google.protobuf.json_format import ParseDict
            from mlflow.entities import DatasetInput
            from mlflow.protos.service_pb2 import DatasetInput as ProtoDatasetInput

            datasets = [DatasetInput.from_proto(ParseDict(d, ProtoDatasetInput())) for d in rec["datasets"]]
            _log_inputs_racing(lambda: client.log_inputs(run_id, datasets=datasets))
        elif op == "end":
            client.set_terminated(run_id, status=rec["status"], end_time=rec.get("end_time"))
            self.ended[run_id] = rec["status"]
        else:
            raise TrackingError(f"spool record op {op!r} is unknown to this lusynth; sync with the version that wrote it")

    def _run(self, rec: dict[str, Any]) -> str:
        """The server run of a ``run`` record: the one it names, one an earlier sync created, or a new one."""
        from mlflow.exceptions import MlflowException

        key = rec["run"]
        if key in self.state.runs:
            return self.state.runs[key]
        if rec.get("run_id"):
            try:
                self.client.get_run(rec["run_id"])
                return str(rec["run_id"])
            except MlflowException as exc:
                if is_unavailable(exc):
                    raise
                # not on this server (a new database): recreate it below
        exp_id = experiment_id(self.client, rec["experiment"], self.uri)
        found = self.client.search_runs([exp_id], filter_string=f"tags.`{SPOOL_TAG}` = '{key}'", max_results=1)
        if found:
            return str(found[0].info.run_id)
        tags = {**rec.get("tags", {}), SPOOL_TAG: key}
        run = self.client.create_run(exp_id, start_time=rec.get("start_time"), tags=tags, run_name=rec.get("run_name"))
        return str(run.info.run_id)


@dataclass
class SyncResult:
    """What :func:`sync` did with one spool file."""

    spool: Path
    uploaded: dict[str, int]  # records sent, by op
    runs: dict[str, str]  # server run id -> status it was ended with
    rejected: list[str]  # records the server refused (skipped)
    removed: bool  # everything is on the server: the spool is gone

    def line(self) -> str:
        """One line for a terminal."""
        if not self.uploaded:
            return f"{self.spool}: nothing to upload"
        what = ", ".join(f"{op} {n}" for op, n in sorted(self.uploaded.items()))
        runs = ", ".join(f"{r} ({s})" for r, s in self.runs.items()) or "no run ended"
        extra = f"; {len(self.rejected)} refused by the server: {self.rejected[0]}" if self.rejected else ""
        return f"{self.spool}: uploaded {sum(self.uploaded.values())} records ({what}); run {runs}{extra}"


def _spool_uri(records: Sequence[dict[str, Any]], uri: str | None) -> str:
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    for rec in records:
        if rec["op"] == "run" and rec.get("tracking_uri"):
            return str(rec["tracking_uri"])
    raise TrackingError("the spool names no tracking server; set MLFLOW_TRACKING_URI or pass --tracking-uri")


def sync_file(path: str | os.PathLike[str], *, uri: str | None = None) -> SyncResult:
    """Upload the records of one spool file not uploaded yet (see the module doc)."""
    path = Path(path)
    records, state = read_spool(path)
    todo = [r for r in records if r["id"] not in state.uploaded]
    if not todo:
        remove_spool(path)
        return SyncResult(path, {}, {}, [], removed=True)
    target = _spool_uri(records, uri)
    configure_http_retries()
    if not reachable(target, timeout=5.0):
        raise TrackingError(f"MLflow at {target} is not reachable; {path} is kept: start the server (or pass --tracking-uri) "
                            "and run `lusynth tracking sync` again")
    from mlflow.tracking import MlflowClient

    def save(s: SpoolState) -> None:
        atomic_write_text(_state_path(path), dumps_json({"uploaded": sorted(s.uploaded), "runs": s.runs}))

    up = Uploader(MlflowClient(tracking_uri=target), target, state, base=path.parent, save=save)
    try:
        up.upload(records)
    except Exception as exc:
        if is_unavailable(exc):
            raise TrackingError(f"MLflow at {target} went away during the sync ({short_reason(exc)}); {path} keeps the "
                                f"{len(records) - len(state.uploaded)} records not sent; run `lusynth tracking sync` again") from None
        raise
    remove_spool(path)
    return SyncResult(path, dict(up.counts), up.ended, up.rejected, removed=True)


def sync(paths: Sequence[str | os.PathLike[str]] = (".",), *, uri: str | None = None) -> list[SyncResult]:
    """Upload every spool found in (or beside) ``paths`` (:func:`find_spools`) to MLflow."""
    return [sync_file(p, uri=uri) for p in find_spools(paths)]


def _log_inputs_racing(log: Callable[[], None], *, attempts: int = 4) -> None:
    """``log()`` (an MLflow ``log_inputs``), retried when another run created the same dataset at
    the same moment: MLflow's store looks a dataset up by (experiment, name, digest) and inserts it
    when missing, so two tasks logging one frame store together (two classifiers reading one
    synthetic set, in parallel KFP tasks) can both miss it and one insert fails on the unique key.
    The retry finds the dataset the other run committed."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            log()
            return
        except MlflowException as exc:
            text = str(exc).lower()
            if attempt == attempts - 1 or "unique" not in text or "dataset" not in text:
                raise
            time.sleep(0.1 * (attempt + 1))
