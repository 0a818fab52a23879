"""The MLflow parent run of a pipeline run on a cluster, opened and closed by pipeline tasks.

``lusynth run`` opens the parent run in its own process (:func:`lusynth.tracking.parent_run`)
around ``kfp.local``. On a cluster no process outlives the tasks, so the pipeline's first task
opens it (:func:`open_pipeline_run`), every stage task finds it by its KFP run id tag
(:func:`join_kfp_run`: its id as a task input would defeat KFP's cache), and the pipeline's exit
handler closes it (:func:`close_pipeline_run`), FAILED when any task failed.

Both are idempotent: a retried opening task finds the run its first attempt opened (same KFP run
id) instead of opening a second one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lusynth.tracking.client import check_reachable, configure_http_retries, experiment_id, tracking_uri
from lusynth.tracking.lineage import lineage_tags
from lusynth.tracking.runs import DEFAULT_EXPERIMENT
from lusynth.tracking.tracker import _flatten

KFP_RUN_TAG = "lusynth.kfp_run_id"
ENGINE_TAG = "lusynth.engine"
#: who closes the parent run: "kfp" = the pipeline's exit handler (a run opened by a task)
OWNER_TAG = "lusynth.parent_owner"


def _client() -> tuple[Any, str]:
    from mlflow.tracking import MlflowClient

    configure_http_retries()
    uri = tracking_uri()
    check_reachable(uri)
    return MlflowClient(tracking_uri=uri), uri


def _find(client: Any, exp_id: str, kfp_run_id: str) -> Any | None:
    """The parent run a task of KFP run ``kfp_run_id`` opened, or None."""
    runs = client.search_runs([exp_id], filter_string=f"tags.`{KFP_RUN_TAG}` = '{kfp_run_id}' and tags.`lusynth.stage` = 'pipeline'",
                              max_results=2)
    return runs[0] if runs else None


def open_pipeline_run(
    kfp_run_id: str,
    *,
    experiment: str = "",
    params: Mapping[str, Any] | None = None,
    profile: str | None = None,
    run_name: str = "pipeline",
) -> str:
    """Open (or, on a retry, find) the parent run of KFP run ``kfp_run_id``; its run id.

    The run stays RUNNING: :func:`close_pipeline_run` ends it.
    """
    if not kfp_run_id or kfp_run_id.startswith("{{"):
        raise ValueError("open_pipeline_run needs the KFP run id (dsl.PIPELINE_JOB_ID_PLACEHOLDER), got "
                         f"{kfp_run_id!r}")
    client, uri = _client()
    exp_id = experiment_id(client, experiment or DEFAULT_EXPERIMENT, uri)
    found = _find(client, exp_id, kfp_run_id)
    if found is not None:
        return str(found.info.run_id)
    tags = {**lineage_tags(profile=profile), "lusynth.stage": "pipeline", "mlflow.runName": run_name, KFP_RUN_TAG: kfp_run_id,
            ENGINE_TAG: "kfp", OWNER_TAG: "kfp"}
    run = client.create_run(exp_id, tags=tags, run_name=run_name)
    if params:  # this plumbing task needs the server (check_reachable above): no spool, one batch
        from mlflow.entities import Param

        flat: dict[str, str] = {}
        _flatten("", params, flat)
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flat.items()])
    return str(run.info.run_id)


def join_kfp_run(experiment: str = "", parent_run_id: str = "") -> None:
    """What a tracked KFP task does first: track into ``experiment``, nested under ``parent_run_id``,
    or, when it is '' and none is in the environment (``lusynth run`` exports its own), under the run
    :func:`open_pipeline_run` opened for this task's KFP run (``KFP_RUN_ID``), found by its tag.

    The cluster pipeline relies on the lookup: a task that took that run's id as an input would have
    an input that is new in every submission, and KFP's cache, which keys a task on its inputs, could
    never serve it. A lookup that fails leaves the stage run unnested, with one warning line; the
    stage's own run still holds everything."""
    import os
    import sys

    from lusynth.tracking.client import short_reason
    from lusynth.tracking.lineage import kfp_run_id
    from lusynth.tracking.runs import PARENT_RUN_ENV, join_pipeline_run

    join_pipeline_run(experiment, parent_run_id)
    kfp = kfp_run_id()
    if os.environ.get(PARENT_RUN_ENV) or not kfp:
        return
    try:
        found = find_pipeline_run(kfp, experiment=experiment)
    except Exception as exc:
        found, why = None, short_reason(exc)
    else:
        why = f"none in experiment {experiment or DEFAULT_EXPERIMENT!r}"
    if found is None:
        print(f"warning: the pipeline's MLflow run of KFP run {kfp} was not found ({why}); this stage's run is not nested "
              "under it", file=sys.stderr, flush=True)
        return
    os.environ[PARENT_RUN_ENV] = found


def _find_in(client: Any, experiment: str, kfp_run_id: str) -> Any | None:
    """:func:`_find` in the experiment named ``experiment`` ('' = the default), None when it does not exist."""
    exp = client.get_experiment_by_name(experiment or DEFAULT_EXPERIMENT)
    return None if exp is None else _find(client, str(exp.experiment_id), kfp_run_id)


def find_pipeline_run(kfp_run_id: str, *, experiment: str = "") -> str | None:
    """The id of the parent run :func:`open_pipeline_run` opened for KFP run ``kfp_run_id``, or None."""
    client, _ = _client()
    found = _find_in(client, experiment, kfp_run_id)
    return None if found is None else str(found.info.run_id)


def close_pipeline_run(kfp_run_id: str, *, succeeded: bool, experiment: str = "") -> str | None:
    """End the parent run that a task of KFP run ``kfp_run_id`` opened (FINISHED or FAILED); its
    id, or None when there is none (the run was opened elsewhere, e.g. by ``lusynth run``)."""
    if not kfp_run_id or kfp_run_id.startswith("{{"):
        return None
    client, _ = _client()
    found = _find_in(client, experiment, kfp_run_id)
    if found is None or found.data.tags.get(OWNER_TAG) != "kfp":
        return None
    client.set_terminated(found.info.run_id, status="FINISHED" if succeeded else "FAILED")
    return str(found.info.run_id)
