"""Every conversation with MLflow goes through this package.

The tracking URI comes from ``MLFLOW_TRACKING_URI``; with none set, a local SQLite store under the
stage's output directory (``<out>/mlruns.db``; artifacts beside it), so a researcher needs no
server. Metrics are buffered and sent with ``log_batch`` (one request per flush, not per value).

Split by concern:

- :mod:`.client`: the tracking URI, the reachability check, HTTP retries, ``MlflowClient``;
- :mod:`.lineage`: the lineage tags of a run (git commit, data digests, DVC revision, KFP run);
- :mod:`.tracker`: :class:`Tracker`, the live run a stage logs to, and :class:`NullTracker`;
- :mod:`.runs`: opening parent and stage runs, system metrics, joining a pipeline's run;
- :mod:`.datasets`: frame stores as MLflow dataset inputs;
- :mod:`.spool`: what a run could not send, kept beside the stage's outputs, and :func:`sync`.

Import from ``lusynth.tracking``; the names below are its API.

Runs and lineage:

- :func:`parent_run` opens one run per pipeline run and exports its id in ``LUSYNTH_PARENT_RUN_ID``
  (and the resolved tracking URI and experiment), so every stage run opened by :func:`stage_run`
  -- in this process, a KFP subprocess, a DVC stage or a CLI call -- nests under it in one store.
- Every run carries lineage tags (:func:`lineage_tags`): git commit, data digest(s), DVC revision,
  KFP run id, profile, seed. ``mlflow.source.git.commit`` is set too, so the UI shows the commit.
- Every stage run records the frame stores it read as MLflow dataset inputs
  (:func:`log_frame_store_input`): name, content digest, source = where the data lives (the KFP
  artifact's object-store URI, ``dvc://path@rev``, or the local directory), context (``training``,
  ``synthetic``, ``holdout``).
- Runs are named ``stage · class · fraction · seed`` (:func:`run_name`); the experiments lusynth
  creates carry ``mlflow.experimentKind = custom_model_development`` (MLflow 3's model-training view).
- A stage can put results on the pipeline's run too (:func:`log_to_parent`: evaluate's verdicts).
- System metrics (CPU, memory, disk, network; GPU when present) are sampled by MLflow's
  ``SystemMetricsMonitor`` on a background thread (``LUSYNTH_SYSTEM_METRICS=0`` turns it off;
  the interval is ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``, default 10 s here).

Failures: transient HTTP failures (429, 5xx, connection resets) are retried by MLflow's own HTTP
layer with exponential backoff; :func:`configure_http_retries` sets bounded defaults (5 retries,
backoff factor 1 -> ~30 s in all, 30 s per request) unless the ``MLFLOW_HTTP_REQUEST_*`` variables
are already set. A server that is gone after that (or at the start, or at the end) never fails the
stage: the :class:`Tracker` goes offline with one warning line, keeps every record it could not
send, retries ``/health`` now and then, and at the end writes what is left to
``<out>/tracking-spool.jsonl`` (:mod:`.spool`). ``lusynth tracking sync`` (:func:`sync`), or the
next tracked run of that output, uploads it: the run is created if it never existed or continued,
nothing is sent twice, and it ends with the status the stage meant (FINISHED, or FAILED on an
exception): no run is left RUNNING by a lost server. A killed process (SIGKILL) loses what it held.
"""

from lusynth.tracking.client import (
    TrackingError,
    check_reachable,
    configure_http_retries,
    is_unavailable,
    mlflow_client,
    reachable,
    tracking_uri,
)
from lusynth.tracking.datasets import DATASET_CONTEXTS, dataset_digest, dataset_location, dataset_name, log_frame_store_input
from lusynth.tracking.lineage import (
    DVC_REV_ENV,
    GIT_COMMIT_ENV,
    KFP_RUN_ID_ENV,
    PROFILE_ENV,
    git_commit,
    kfp_run_id,
    lineage_tags,
)
from lusynth.tracking.runs import (
    DEFAULT_EXPERIMENT,
    PARENT_RUN_ENV,
    SYSTEM_METRICS_ENV,
    join_pipeline_run,
    log_to_parent,
    optional_stage_run,
    parent_run,
    run_name,
    stage_run,
)
from lusynth.tracking.spool import SPOOL_FILE, SyncResult, find_spools, spool_path, sync, sync_file
from lusynth.tracking.tracker import NullTracker, Tracker

__all__ = [
    "DATASET_CONTEXTS",
    "DEFAULT_EXPERIMENT",
    "DVC_REV_ENV",
    "GIT_COMMIT_ENV",
    "KFP_RUN_ID_ENV",
    "PARENT_RUN_ENV",
    "PROFILE_ENV",
    "SPOOL_FILE",
    "SYSTEM_METRICS_ENV",
    "NullTracker",
    "SyncResult",
    "Tracker",
    "TrackingError",
    "check_reachable",
    "configure_http_retries",
    "dataset_digest",
    "dataset_location",
    "dataset_name",
    "find_spools",
    "git_commit",
    "is_unavailable",
    "join_pipeline_run",
    "kfp_run_id",
    "lineage_tags",
    "log_frame_store_input",
    "log_to_parent",
    "mlflow_client",
    "optional_stage_run",
    "parent_run",
    "reachable",
    "run_name",
    "spool_path",
    "stage_run",
    "sync",
    "sync_file",
    "tracking_uri",
]
