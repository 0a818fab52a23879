"""The lusynth experiment as one KFP v2 pipeline.

    ingest -> plan_gans -> [train_gan -> generate -> audit] per (class x fraction x GAN seed x family x fold)
           -> bundle_synthetic
           plan_classifiers -> [train_classifier] per cell whose arm reads synthetic frames, fed the bundle
           plan_classifiers -> [train_classifier] per cell of the other arms (real, real+aug), no bundle
                   -> evaluate (holdout, fidelity, privacy, report) -> export/register

Task settings (resources, images, GPUs and their placement, retries, caching, timeouts, and each
task's own credentials) are applied here and only here (kubeflow/pipelines habit).
``make_pipeline(cluster=ClusterSettings(...), local=...)`` builds the pipeline for a cluster
(ConfigMap/Secret -> env per task, GPUs and the CUDA image for the `paper` profile, the MLflow
parent run opened by a task and closed by an exit handler) or for ``kfp.local`` (no platform
settings; the caller opens the parent run; the stage cache replaces KFP's cache, whose local keys
ignore project code edits).
Run this file to compile: ``python pipelines/experiment.py [out.yaml]``.
"""


import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kfp import dsl

from lusynth.errors import InputError
from lusynth_components import settings as images
from lusynth_components.audit import audit
from lusynth_components.bundle import bundle_synthetic
from lusynth_components.evaluate import evaluate
from lusynth_components.export_register import export_register
from lusynth_components.generate import generate
from lusynth_components.ingest import ingest
from lusynth_components.pipeline_run import close_parent_run, open_parent_run
from lusynth_components.plan import plan_classifiers, plan_gans, stage_settings
from lusynth_components.train_classifier import train_classifier
from lusynth_components.train_gan import train_gan

PIPELINE_NAME = "lusynth-experiment"

#: Kubernetes Secrets the tasks read credentials from (created from infra/k8s/secrets/*.template.yaml)
S3_SECRET = "lusynth-s3"
MLFLOW_SECRET = "lusynth-mlflow-client"
PSEUDONYM_SECRET = "lusynth-pseudonym-key"
SETTINGS_CONFIGMAP = "lusynth-settings"

# What a task may be given (least privilege: each task gets only the groups it needs):
S3 = "s3"  # S3 keys and endpoint: reading an s3:// source, the GAN checkpoint mirror
MLFLOW = "mlflow"  # the tracking URI and login: stage runs, the registry (artifacts go through the server's proxy)
PSEUDONYM = "pseudonym_key"  # the key that pseudonymises patient ids: ingest only

#: ConfigMap lusynth-settings: ConfigMap key -> environment variable the code reads (kfp-kubernetes'
#: direction), per group
SETTINGS_ENV: dict[str, dict[str, str]] = {
    MLFLOW: {"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI"},  # lusynth.tracking.client.tracking_uri
    S3: {"S3_ENDPOINT_URL": "LUSYNTH_S3_ENDPOINT_URL",  # lusynth.storage.client.endpoint_url
         "AWS_DEFAULT_REGION": "AWS_DEFAULT_REGION"},  # lusynth.storage.client.client
}
#: Secret name and (Secret key -> environment variable), per group
SECRET_ENV: dict[str, tuple[str, dict[str, str]]] = {
    MLFLOW: (MLFLOW_SECRET, {"MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",  # read by mlflow's HTTP client
                             "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"}),
    S3: (S3_SECRET, {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}),  # lusynth.storage.client
}
#: the pseudonym key arrives as a file (never in the environment): the Secret mounted here, its key "key"
PSEUDONYM_MOUNT = "/var/run/secrets/lusynth"
PSEUDONYM_FILE_ENV = {"LUSYNTH_PSEUDONYM_KEY_FILE": f"{PSEUDONYM_MOUNT}/key"}  # lusynth.data.keys.load_key


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
    access: frozenset[str] = frozenset()  # credential groups (S3, MLFLOW, PSEUDONYM) the task is given


_PLUMBING = ("100m", "500m", "256Mi", "1Gi")

#: per-task resources and credentials on a cluster; `gpu` marks the tasks that get one GPU (and the
#: GPU image) when compiled with gpu=True
STAGE_RESOURCES: dict[str, Resources] = {
    "open_parent_run": Resources(*_PLUMBING, retries=2, timeout_s=300, caching=False, access=frozenset({MLFLOW})),
    "ingest": Resources("1", "2", "2Gi", "8Gi", timeout_s=2 * 3600, access=frozenset({S3, PSEUDONYM})),
    "plan_gans": Resources(*_PLUMBING, timeout_s=300),
    "plan_classifiers": Resources(*_PLUMBING, timeout_s=300),
    "stage_settings": Resources(*_PLUMBING, timeout_s=300),
    "train_gan": Resources("2", "4", "4Gi", "16Gi", gpu=True, retries=2, timeout_s=12 * 3600, access=frozenset({S3, MLFLOW})),
    "generate": Resources("1", "2", "2Gi", "8Gi", timeout_s=3600, access=frozenset({MLFLOW})),
    "audit": Resources("1", "2", "2Gi", "8Gi", timeout_s=3600),
    "bundle_synthetic": Resources("500m", "1", "1Gi", "4Gi", timeout_s=1800),
    "train_classifier": Resources("2", "4", "4Gi", "16Gi", gpu=True, retries=2, timeout_s=6 * 3600, access=frozenset({MLFLOW})),
    "evaluate": Resources("2", "4", "4Gi", "16Gi", timeout_s=2 * 3600, access=frozenset({MLFLOW})),
    # retried with caching off: registration finds its own earlier version by the ONNX sha256 (lusynth.registry.client)
    "export_register": Resources("1", "2", "2Gi", "8Gi", retries=2, timeout_s=3600, caching=False, access=frozenset({MLFLOW})),
    "close_parent_run": Resources(*_PLUMBING, retries=2, timeout_s=300, caching=False, access=frozenset({MLFLOW})),
}


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration for the GPU tasks: ``KEY[=VALUE][:EFFECT]`` on the command line."""

    key: str
    value: str | None = None  # None = operator Exists (any value)
    effect: str | None = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute | None (any)

    @classmethod
    def parse(cls, text: str) -> "Toleration":
        """``nvidia.com/gpu``, ``nvidia.com/gpu:NoSchedule``, ``pool=gpu:NoExecute``, ``pool=gpu:`` (any effect)."""
        spec, _, effect = text.partition(":")
        key, eq, value = spec.partition("=")
        if not key or (effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute")):
            raise InputError(f"--gpu-toleration {text!r}: write KEY[=VALUE][:EFFECT], EFFECT one of NoSchedule, "
                             "PreferNoSchedule, NoExecute")
        return cls(key, value if eq else None, effect or (None if text.endswith(":") else "NoSchedule"))


@dataclass(frozen=True)
class ClusterSettings:
    """How the pipeline is compiled for a cluster: the images, and where the GPU tasks run."""

    gpu: bool = False  # one GPU (and the CUDA image) for each training task
    image: str = ""  # '' = lusynth_components.settings.IMAGE (the CPU image)
    gpu_image: str = ""  # '' = lusynth_components.settings.GPU_IMAGE (the CUDA image)
    # node labels the GPU tasks must run on, e.g. {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    gpu_node_selector: Mapping[str, str] = field(default_factory=dict)
    # the taint GPU node pools usually carry (GKE, AKS, the NVIDIA GPU operator)
    gpu_tolerations: tuple[Toleration, ...] = (Toleration("nvidia.com/gpu"),)

    def __post_init__(self) -> None:
        for flag, ref in (("--image", self.cpu_image), ("--gpu-image", self.cuda_image)):
            problem = images.immutable_image_problem(ref)
            if problem:
                raise InputError(f"{flag} {ref}: not an immutable image reference ({problem}); "
                                 "give a version tag or a digest, e.g. REGISTRY/lusynth:0.1.0 or REGISTRY/lusynth@sha256:...")

    @property
    def cpu_image(self) -> str:
        return self.image or images.IMAGE

    @property
    def cuda_image(self) -> str:
        return self.gpu_image or images.GPU_IMAGE


def _credentials(task: dsl.PipelineTask, access: frozenset[str]) -> None:
    """Only the settings and Secrets of the groups in ``access``."""
    from kfp import kubernetes

    settings_env = {k: v for group in sorted(access) for k, v in SETTINGS_ENV.get(group, {}).items()}
    if settings_env:
        kubernetes.use_config_map_as_env(task, config_map_name=SETTINGS_CONFIGMAP, config_map_key_to_env=settings_env)
    for group in sorted(access & set(SECRET_ENV)):
        name, key_to_env = SECRET_ENV[group]
        kubernetes.use_secret_as_env(task, secret_name=name, secret_key_to_env=key_to_env)
    if PSEUDONYM in access:
        kubernetes.use_secret_as_volume(task, secret_name=PSEUDONYM_SECRET, mount_path=PSEUDONYM_MOUNT)
        for k, v in PSEUDONYM_FILE_ENV.items():
            task.set_env_variable(k, v)


def apply_settings(task: dsl.PipelineTask, stage: str, *, cluster: ClusterSettings | None = None, local: bool = False,
                   gpu: bool | None = None, engine_cache: bool = False) -> dsl.PipelineTask:
    """Resources, image, accelerator, placement, retries, caching, timeout and credentials of one task."""
    r = STAGE_RESOURCES[stage]
    if local:
        # kfp.local: the stage cache decides what reruns; KFP's local cache would serve stale
        # results after an edit to lusynth itself (its key does not cover imported code).
        # ``engine_cache``: KFP's own caching options as on a cluster (what a cluster would serve from its cache)
        task.set_caching_options(enable_caching=engine_cache and r.caching)
        return task
    from kfp import kubernetes

    cluster = cluster or ClusterSettings(gpu=bool(gpu))

    task.set_display_name(stage)
    task.set_cpu_request(r.cpu_request).set_cpu_limit(r.cpu_limit)
    task.set_memory_request(r.memory_request).set_memory_limit(r.memory_limit)
    on_gpu = cluster.gpu and r.gpu
    task.set_container_image(cluster.cuda_image if on_gpu else cluster.cpu_image)
    if on_gpu:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        for t in cluster.gpu_tolerations:
            kubernetes.add_toleration(task, key=t.key, operator="Equal" if t.value is not None else "Exists", value=t.value,
                                      effect=t.effect)  # type: ignore[arg-type]
        for k, v in cluster.gpu_node_selector.items():
            kubernetes.add_node_selector(task, label_key=k, label_value=v)
    if r.retries:
        task.set_retry(num_retries=r.retries, backoff_duration="60s", backoff_factor=2.0, backoff_max_duration="1800s")
    task.set_caching_options(enable_caching=r.caching)
    kubernetes.set_timeout(task, r.timeout_s)
    _credentials(task, r.access)
    task.set_env_variable("KFP_RUN_ID", dsl.PIPELINE_JOB_ID_PLACEHOLDER)  # lusynth.tracking.lineage.kfp_run_id
    task.set_env_variable("LUSYNTH_STAGE_CACHE", "off")  # lusynth.stagecache: pods are fresh; KFP's cache applies on a cluster
    return task


_DESCRIPTION = "Does synthetic GAN data help, or safely replace, real lung-ultrasound data?"
_Outputs = NamedTuple("Outputs", results=dsl.Artifact, models=dsl.Model)


def _stages(s: Callable[[dsl.PipelineTask, str], dsl.PipelineTask], *, local: bool, source: Any, profile: Any, overrides: Any,
            experiment: Any, register: Any, parent_run_id: Any, gan_checkpoints: Any) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """Every task but the exit handler; (evaluate, export_register).

    What makes KFP's cache work across submissions: a task's inputs are only what its stage reads.
    Each task gets its own stage's settings (``stage_settings``'s output, or in a loop its item's field:
    a GAN's family's), never the whole ``overrides``, and no value that is new in every run: the parent run's id is the
    pipeline parameter as given ('' on a cluster), and a task finds the run that ``open_parent_run``
    opened by the KFP run id in its environment (lusynth.tracking.pipeline_run.join_kfp_run)."""
    opened = None
    if not local:  # `lusynth run` opened the parent run itself
        opened = s(open_parent_run(source=source, profile=profile, overrides=overrides, experiment=experiment,
                                   parent_run_id=parent_run_id, kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER), "open_parent_run")

    def tracked(task: dsl.PipelineTask, stage: str) -> dsl.PipelineTask:
        """A task that logs to MLflow: after the parent run is open (an order, not an input)."""
        return s(task, stage) if opened is None else s(task, stage).after(opened)

    settings = s(stage_settings(source=source, profile=profile, overrides=overrides), "stage_settings")
    ing = s(ingest(source=source, profile=profile, overrides=settings.outputs["ingest"]), "ingest")
    frames = ing.outputs["frames"]
    gan_jobs = s(plan_gans(frames=frames, profile=profile, overrides=overrides), "plan_gans")
    # two classifier loops: a real arm's task takes no synthetic bundle, so a new or retrained GAN leaves it cached
    real_jobs = s(plan_classifiers(profile=profile, overrides=overrides, synthetic=False), "plan_classifiers")
    synthetic_jobs = s(plan_classifiers(profile=profile, overrides=overrides, synthetic=True), "plan_classifiers")
    with dsl.ParallelFor(gan_jobs.output, name="gans") as job:
        g = tracked(train_gan(frames=frames, job=job.key, profile=profile, overrides=job.train_gan, experiment=experiment,
                              parent_run_id=parent_run_id, checkpoint_root=gan_checkpoints), "train_gan")
        syn = tracked(generate(gans=g.outputs["gan"], frames=frames, profile=profile, overrides=job.generate,
                               experiment=experiment, parent_run_id=parent_run_id), "generate")
        # the privacy audit of each synthetic set (its unfiltered output): decision and report per GAN
        aud = s(audit(frames=frames, synthetic=syn.outputs["synthetic"], gans=g.outputs["gan"], profile=profile,
                      overrides=job.audit), "audit")
    # the compiler cannot feed one loop's fan-in into another loop: bundle the synthetic sets first
    bundle = s(bundle_synthetic(synthetic=dsl.Collected(syn.outputs["synthetic"])), "bundle_synthetic")
    with dsl.ParallelFor(real_jobs.output, name="real-classifiers") as rj:
        r = tracked(train_classifier(frames=frames, job=rj.key, profile=profile, overrides=rj.train_classifier, experiment=experiment,
                                     parent_run_id=parent_run_id), "train_classifier")
    with dsl.ParallelFor(synthetic_jobs.output, name="classifiers") as cj:
        c = tracked(train_classifier(frames=frames, synthetic=bundle.outputs["bundle"], job=cj.key, profile=profile,
                                     overrides=cj.train_classifier, experiment=experiment,
                                     parent_run_id=parent_run_id), "train_classifier")
    ev = tracked(evaluate(frames=frames, classifiers=dsl.Collected(c.outputs["classifier"]),
                          real_classifiers=dsl.Collected(r.outputs["classifier"]), gans=dsl.Collected(g.outputs["gan"]),
                          synthetic=dsl.Collected(syn.outputs["synthetic"]), audits=dsl.Collected(aud.outputs["audit"]),
                          profile=profile, overrides=settings.outputs["evaluate"], experiment=experiment,
                          parent_run_id=parent_run_id), "evaluate")
    ex = tracked(export_register(classifiers=dsl.Collected(c.outputs["classifier"]), real_classifiers=dsl.Collected(r.outputs["classifier"]),
                                 gans=dsl.Collected(g.outputs["gan"]),
                                 evaluation=ev.outputs["results"], profile=profile, overrides=settings.outputs["export_register"],
                                 register=register, experiment=experiment, parent_run_id=parent_run_id), "export_register")
    return ev, ex


def make_pipeline(*, gpu: bool = False, local: bool = False, cluster: ClusterSettings | None = None,
                  engine_cache: bool = False) -> Callable[..., Any]:
    """Build the pipeline function (``gpu``: one GPU for training tasks, or ``cluster`` for every
    cluster setting; ``local``: for kfp.local; ``engine_cache``: kfp.local with KFP's caching options
    as on a cluster, for checking what a cluster's cache would serve).

    Parameters (both variants have the same): ``source`` '' = built-in phantom. ``profile`` names a
    profile of lusynth/profiles.yaml and ``overrides`` ({section: {field: value}}) goes on top of it;
    ``lusynth run`` and ``lusynth pipeline submit`` check the overrides against every resolved section
    first (lusynth.experiment.run_overrides), and the parent run records every resolved value; each task gets only its
    stage's share (``stage_settings``). ``parent_run_id``: the MLflow run every stage run nests under
    ('' = the one in the environment: ``lusynth run`` exports it; on a cluster, the one the first task
    opens, found by the KFP run id). It is a task input as given, so a run id per submission would
    keep KFP's cache from serving any tracked task. ``gan_checkpoints`` (s3://bucket/prefix,
    '' = off): where GAN training mirrors its resumable state, so a retried train_gan task resumes.

    The two plumbing parameters are '' rather than Optional[str] = None: kfp.local 2.17.3 still
    cannot run a pipeline whose optional parameter is left at None ("Unknown value type:" in
    kfp.local.executor_output_utils.pb2_value_to_python) nor one given None explicitly ("Constant
    argument inputs must be one of type ..."); rechecked 2026-12-06.

    On a cluster the stages run inside an exit handler that closes the MLflow parent run (opened by
    the first task) as FINISHED or FAILED; KFP allows no pipeline outputs from inside an exit
    handler, so only the local variant (whose caller opens and closes the parent run) returns the
    results and models.
    """
    if not local:  # kfp.local runs the installed package: images do not matter there
        cluster = cluster or ClusterSettings(gpu=gpu)

    def s(task: dsl.PipelineTask, stage: str) -> dsl.PipelineTask:
        return apply_settings(task, stage, cluster=cluster, local=local, engine_cache=engine_cache)

    if local:
        @dsl.pipeline(name=PIPELINE_NAME, description=_DESCRIPTION)
        def lusynth_experiment(
            source: str = "",
            profile: str = "demo",
            overrides: dict = {},  # noqa: B006 - KFP pipeline defaults are compiled, not shared
            experiment: str = "lusynth",
            register: bool = True,
            parent_run_id: str = "",
            gan_checkpoints: str = "",
        ) -> _Outputs:  # type: ignore[valid-type]
            ev, ex = _stages(s, local=True, source=source, profile=profile, overrides=overrides, experiment=experiment, register=register,
                             parent_run_id=parent_run_id, gan_checkpoints=gan_checkpoints)
            return _Outputs(results=ev.outputs["results"], models=ex.outputs["models"])

        return lusynth_experiment

    @dsl.pipeline(name=PIPELINE_NAME, description=_DESCRIPTION)
    def lusynth_experiment_cluster(
        source: str = "",
        profile: str = "demo",
        overrides: dict = {},  # noqa: B006 - KFP pipeline defaults are compiled, not shared
        experiment: str = "lusynth",
        register: bool = True,
        parent_run_id: str = "",
        gan_checkpoints: str = "",
    ) -> None:
        # the exit task cannot take another task's output: it finds the parent run by the KFP run id
        closing = s(close_parent_run(experiment=experiment, parent_run_id=parent_run_id, kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER),
                    "close_parent_run")
        with dsl.ExitHandler(closing, name="mlflow-parent-run"):
            _stages(s, local=False, source=source, profile=profile, overrides=overrides, experiment=experiment, register=register,
                    parent_run_id=parent_run_id, gan_checkpoints=gan_checkpoints)

    return lusynth_experiment_cluster


def compile_pipeline(out: str, *, gpu: bool = False, cluster: ClusterSettings | None = None) -> str:
    """Write the KFP IR YAML for a cluster (``cluster``: images, GPUs and their placement)."""
    from kfp import compiler

    compiler.Compiler().compile(make_pipeline(cluster=cluster or ClusterSettings(gpu=gpu)), package_path=out)
    return out


if __name__ == "__main__":
    print(compile_pipeline(sys.argv[1] if len(sys.argv) > 1 else "lusynth-experiment.yaml"))
