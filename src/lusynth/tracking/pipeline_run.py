"""The MLflow parent run of a pipeline run on a cluster, opened and closed by pipeline tasks.

``lusynth run`` opens the parent run in its own process (:func:`lusynth.tracking.parent_run`)
around ``kfp.local``. On a cluster no process outlives the tasks, so the pipeline's first task
opens it (:func:`open_pipeline_run`) and passes its id to every stage task, and the pipeline's
exit handler closes it (:func:`close_pipeline_run`), FAILED when any task failed. The exit task
cannot take another task's output (a KFP rule), so it finds the run by its KFP run id tag.

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


def close_pipeline_run(kfp_run_id: str, *, succeeded: bool, experiment: str = "") -> str | None:
    """End the parent run that a task of KFP run ``kfp_run_id`` opened (FINISHED or FAILED); its
    id, or None when there is none (the run was opened elsewhere, e.g. by ``lusynth run``)."""
    if not kfp_run_id or kfp_run_id.startswith("{{"):
        return None
    client, _ = _client()
    exp = client.get_experiment_by_name(experiment or DEFAULT_EXPERIMENT)
    if exp is None:
        return None
    found = _find(client, str(exp.experiment_id), kfp_run_id)
    if found is None or found.data.tags.get(OWNER_TAG) != "kfp":
        return None
    client.set_terminated(found.info.run_id, status="FINISHED" if succeeded else "FAILED")
    return str(found.info.run_id)
