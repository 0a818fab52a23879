"""KFP components: open the MLflow parent run of a cluster run, and close it from the exit handler."""

from kfp import dsl

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def open_parent_run(source: str, profile: str, overrides: dict, experiment: str, parent_run_id: str, kfp_run_id: str) -> str:
    """The parent run every stage run nests under: ``parent_run_id`` when the caller opened one
    (``lusynth run``), else a run opened here for KFP run ``kfp_run_id`` (found again on a retry)."""
    if parent_run_id:
        return parent_run_id
    from lusynth.params import SECTIONS, flat_params, resolve
    from lusynth.tracking.pipeline_run import open_pipeline_run

    params = {"source": source or "phantom", "profile": profile, **flat_params(resolve(SECTIONS, profile, overrides))}
    return open_pipeline_run(kfp_run_id, experiment=experiment, params=params, profile=profile)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def close_parent_run(experiment: str, parent_run_id: str, kfp_run_id: str, status: dsl.PipelineTaskFinalStatus) -> None:
    """End the parent run opened by :func:`open_parent_run` (FAILED when any task failed); a run
    opened by the caller (``parent_run_id`` given) is left to the caller."""
    if parent_run_id:
        return
    from lusynth.tracking.pipeline_run import close_pipeline_run

    close_pipeline_run(kfp_run_id, succeeded=status.state == "SUCCEEDED", experiment=experiment)
