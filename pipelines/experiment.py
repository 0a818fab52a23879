"""The lusynth experiment as one KFP v2 pipeline.

    ingest -> plan_gans -> [train_gan -> generate] per (class x fraction) -> bundle_synthetic
           plan_classifiers -> [train_classifier] per (arm x fraction x seed), fed the bundle
                   -> evaluate (holdout, fidelity, privacy, report) -> export/register

Task settings (resources, GPUs, retries, caching, timeouts, secrets) are applied here and only
here (kubeflow/pipelines habit). ``make_pipeline(gpu=..., local=...)`` builds the pipeline for a
cluster (Kubernetes secrets, GPUs for the `paper` profile) or for ``kfp.local`` (no platform
settings; the stage cache replaces KFP's cache, whose local keys ignore project code edits).
Run this file to compile: ``python pipelines/experiment.py [out.yaml]``.
"""


import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from kfp import dsl

from lusynth_components.audit import audit
from lusynth_components.bundle import bundle_synthetic
from lusynth_components.evaluate import evaluate
from lusynth_components.export_register import export_register
from lusynth_components.generate import generate
from lusynth_components.ingest import ingest
from lusynth_components.plan import plan_classifiers, plan_gans
from lusynth_components.train_classifier import train_classifier
from lusynth_components.train_gan import train_gan

PIPELINE_NAME = "lusynth-experiment"

#: Kubernetes Secrets the tasks read credentials from (created from infra/k8s/secrets/*.template.yaml)
S3_SECRET = "lusynth-s3"
MLFLOW_SECRET = "lusynth-mlflow-client"
PSEUDONYM_SECRET = "lusynth-pseudonym-key"
SETTINGS_CONFIGMAP = "lusynth-settings"


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    gpu: bool = False
    retries: int = 0
    timeout_s: int = 3600
    caching: bool = True


#: per-stage resources on a cluster; `gpu` marks the stages that get one GPU when compiled with gpu=True
STAGE_RESOURCES: dict[str, Resources] = {
    "ingest": Resources("1", "2", "2Gi", "8Gi", timeout_s=2 * 3600),
    "plan_gans": Resources("100m", "500m", "256Mi", "1Gi", timeout_s=300),
    "plan_classifiers": Resources("100m", "500m", "256Mi", "1Gi", timeout_s=300),
    "train_gan": Resources("2", "4", "4Gi", "16Gi", gpu=True, retries=2, timeout_s=12 * 3600),
    "generate": Resources("1", "2", "2Gi", "8Gi", timeout_s=3600),
    "audit": Resources("1", "2", "2Gi", "8Gi", timeout_s=3600),
    "bundle_synthetic": Resources("500m", "1", "1Gi", "4Gi", timeout_s=1800),
    "train_classifier": Resources("2", "4", "4Gi", "16Gi", gpu=True, retries=2, timeout_s=6 * 3600),
    "evaluate": Resources("2", "4", "4Gi", "16Gi", timeout_s=2 * 3600),
    "export_register": Resources("1", "2", "2Gi", "8Gi", retries=2, timeout_s=3600, caching=False),
}


def apply_settings(task: dsl.PipelineTask, stage: str, *, gpu: bool, local: bool) -> dsl.PipelineTask:
    """Resources, accelerator, retries, caching, timeout and credentials of one task."""
    r = STAGE_RESOURCES[stage]
    if local:
        # kfp.local: the stage cache decides what reruns; KFP's local cache would serve stale
        # results after an edit to lusynth itself (its key does not cover imported code)
        task.set_caching_options(enable_caching=False)
        return task
    task.set_display_name(stage)
    task.set_cpu_request(r.cpu_request).set_cpu_limit(r.cpu_limit)
    task.set_memory_request(r.memory_request).set_memory_limit(r.memory_limit)
    if gpu and r.gpu:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    if r.retries:
        task.set_retry(num_retries=r.retries, backoff_duration="60s", backoff_factor=2.0, backoff_max_duration="1800s")
    task.set_caching_options(enable_caching=r.caching)
    from kfp import kubernetes

    kubernetes.set_timeout(task, r.timeout_s)
    kubernetes.use_secret_as_env(
        task, secret_name=S3_SECRET,
        secret_key_to_env={"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"},
    )
    kubernetes.use_secret_as_env(
        task, secret_name=MLFLOW_SECRET,
        secret_key_to_env={"MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"},
    )
    kubernetes.use_secret_as_volume(task, secret_name=PSEUDONYM_SECRET, mount_path="/var/run/secrets/lusynth")
    task.set_env_variable("LUSYNTH_PSEUDONYM_KEY_FILE", "/var/run/secrets/lusynth/key")
    kubernetes.use_config_map_as_env(
        task, config_map_name=SETTINGS_CONFIGMAP,
        config_map_key_to_env={
            "MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI",
            "MLFLOW_S3_ENDPOINT_URL": "S3_ENDPOINT_URL",
            "LUSYNTH_S3_ENDPOINT_URL": "S3_ENDPOINT_URL",
        },
    )
    task.set_env_variable("KFP_RUN_ID", dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    task.set_env_variable("LUSYNTH_STAGE_CACHE", "off")  # pods are fresh; KFP's cache applies on a cluster
    return task


def make_pipeline(*, gpu: bool = False, local: bool = False) -> Callable[..., Any]:
    """Build the pipeline function (``gpu``: one GPU for training tasks; ``local``: for kfp.local)."""

    def s(task: dsl.PipelineTask, stage: str) -> dsl.PipelineTask:
        return apply_settings(task, stage, gpu=gpu, local=local)

    @dsl.pipeline(name=PIPELINE_NAME, description="Does synthetic GAN data help, or safely replace, real lung-ultrasound data?")
    def lusynth_experiment(
        source: str = "",
        profile: str = "demo",
        overrides: dict = {},  # noqa: B006 - KFP pipeline defaults are compiled, not shared
        experiment: str = "lusynth",
        register: bool = True,
        # run plumbing, not stage parameters; '' rather than Optional[str] = None because kfp.local
        # 2.17 cannot run a pipeline whose optional parameter is left at None ("Unknown value type")
        parent_run_id: str = "",
        gan_checkpoints: str = "",
    ) -> NamedTuple("Outputs", results=dsl.Artifact, models=dsl.Model):
        """``source`` '' = built-in phantom. ``profile`` names a profile of lusynth/profiles.yaml and
        ``overrides`` ({section: {field: value}}) goes on top of it; ``lusynth run`` and
        ``lusynth pipeline submit`` pass every value resolved (lusynth.experiment.run_overrides),
        so the run records what it ran with. ``gan_checkpoints`` (s3://bucket/prefix, '' = off):
        where GAN training mirrors its resumable state, so a retried train_gan task resumes."""
        ing = s(ingest(source=source, profile=profile, overrides=overrides), "ingest")
        frames = ing.outputs["frames"]
        gan_jobs = s(plan_gans(frames=frames, profile=profile, overrides=overrides), "plan_gans")
        classifier_jobs = s(plan_classifiers(profile=profile, overrides=overrides), "plan_classifiers")
        with dsl.ParallelFor(gan_jobs.output, name="gans") as job:
            g = s(train_gan(frames=frames, job=job, profile=profile, overrides=overrides,
                            experiment=experiment, parent_run_id=parent_run_id, checkpoint_root=gan_checkpoints), "train_gan")
            syn = s(generate(gans=g.outputs["gan"], frames=frames, profile=profile, overrides=overrides), "generate")
            # the privacy audit of each synthetic set (its unfiltered output): decision and report per GAN
            aud = s(audit(frames=frames, synthetic=syn.outputs["synthetic"], profile=profile, overrides=overrides), "audit")
        # the compiler cannot feed one loop's fan-in into another loop: bundle the synthetic sets first
        bundle = s(bundle_synthetic(synthetic=dsl.Collected(syn.outputs["synthetic"])), "bundle_synthetic")
        with dsl.ParallelFor(classifier_jobs.output, name="classifiers") as cj:
            c = s(train_classifier(frames=frames, synthetic=bundle.outputs["bundle"], job=cj, profile=profile, overrides=overrides,
                                   experiment=experiment, parent_run_id=parent_run_id), "train_classifier")
        ev = s(evaluate(frames=frames, classifiers=dsl.Collected(c.outputs["classifier"]), gans=dsl.Collected(g.outputs["gan"]),
                        synthetic=dsl.Collected(syn.outputs["synthetic"]), audits=dsl.Collected(aud.outputs["audit"]), profile=profile, overrides=overrides, experiment=experiment,
                        parent_run_id=parent_run_id), "evaluate")
        ex = s(export_register(classifiers=dsl.Collected(c.outputs["classifier"]), gans=dsl.Collected(g.outputs["gan"]),
                               evaluation=ev.outputs["results"], profile=profile, overrides=overrides, register=register,
                               experiment=experiment, parent_run_id=parent_run_id), "export_register")
        outputs = NamedTuple("Outputs", results=dsl.Artifact, models=dsl.Model)
        return outputs(results=ev.outputs["results"], models=ex.outputs["models"])

    return lusynth_experiment


def compile_pipeline(out: str, *, gpu: bool = False) -> str:
    """Write the KFP IR YAML for a cluster."""
    from kfp import compiler

    compiler.Compiler().compile(make_pipeline(gpu=gpu), package_path=out)
    return out


if __name__ == "__main__":
    print(compile_pipeline(sys.argv[1] if len(sys.argv) > 1 else "lusynth-experiment.yaml"))
