"""Compile the pipeline, upload it to a Kubeflow Pipelines host as a pipeline version, and run that
version (once, or on a schedule through KFP's recurring runs)."""

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lusynth.errors import LusynthError


class SubmitError(LusynthError):
    """The KFP host cannot be reached or refused the run."""


def check_host(host: str, *, timeout: float = 5.0) -> None:
    """Fail in seconds, naming the host, when the KFP API does not answer its health check."""
    url = host.rstrip("/") + "/apis/v2beta1/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - the user's KFP host
            if resp.status != 200:
                raise SubmitError(f"KFP host {host} answered {url} with HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # behind auth: reachable; kfp.Client handles credentials
            return
        raise SubmitError(f"KFP host {host} answered {url} with HTTP {exc.code}; check --host") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SubmitError(
            f"KFP host {host} is not reachable ({getattr(exc, 'reason', exc)}); check --host "
            "(e.g. `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80` and --host http://127.0.0.1:8080)"
        ) from None


def _client(host: str, namespace: str | None) -> Any:
    import kfp

    check_host(host)
    return kfp.Client(host=host, namespace=namespace)


def version_name_for(package: str | os.PathLike[str]) -> str:
    """``<lusynth version>-<first 12 hex of the IR's sha256>``: the same compiled pipeline gets the
    same version name, so uploading it again finds the version instead of failing or duplicating."""
    from lusynth import __version__
    from lusynth.util import file_sha256

    return f"{__version__}-{file_sha256(package)[:12]}"


def _find_version(client: Any, pipeline_id: str, name: str) -> str | None:
    token = ""
    while True:
        page = client.list_pipeline_versions(pipeline_id, page_token=token, page_size=100)
        for v in page.pipeline_versions or []:
            if v.display_name == name:
                return str(v.pipeline_version_id)
        token = page.next_page_token or ""
        if not token:
            return None


def upload_package(client: Any, package: str, *, version_name: str | None = None, namespace: str | None = None) -> dict[str, str]:
    """The pipeline ``lusynth-experiment`` (created on first use) and a version of it holding
    ``package``, found by name when uploaded before; {pipeline_id, version_id, version_name}."""
    from lusynth_pipelines.experiment import PIPELINE_NAME

    name = version_name or version_name_for(package)
    pipeline_id = client.get_pipeline_id(PIPELINE_NAME)
    if pipeline_id is None:
        # KFP's upload creates the pipeline with a first version named like the pipeline: this package
        p = client.upload_pipeline(package, pipeline_name=PIPELINE_NAME, namespace=namespace,
                                   description="lusynth: does synthetic GAN data help, or safely replace, real lung-ultrasound data?")
        pipeline_id = str(p.pipeline_id)
        first = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc").pipeline_versions or []
        if not first:
            raise SubmitError(f"KFP created pipeline {PIPELINE_NAME} ({pipeline_id}) but lists no version of it")
        return {"pipeline_id": pipeline_id, "version_id": str(first[0].pipeline_version_id), "version_name": str(first[0].display_name)}
    version_id = _find_version(client, pipeline_id, name)
    if version_id is None:
        v = client.upload_pipeline_version(package, pipeline_version_name=name, pipeline_id=pipeline_id,
                                           description=f"lusynth {name}")
        version_id = str(v.pipeline_version_id)
    return {"pipeline_id": pipeline_id, "version_id": version_id, "version_name": name}


def upload(host: str, *, cluster: Any = None, namespace: str | None = None, version_name: str | None = None) -> dict[str, str]:
    """Compile for ``cluster`` and upload: the pipeline (once) and this version (once)."""
    client = _client(host, namespace)
    with tempfile.TemporaryDirectory() as tmp:
        package = str(compile_to(Path(tmp) / "pipeline.yaml", cluster=cluster))
        return upload_package(client, package, version_name=version_name, namespace=namespace)


def submit(
    host: str,
    *,
    arguments: dict[str, Any],
    experiment: str = "lusynth",
    schedule: str | None = None,
    job_name: str | None = None,
    gpu: bool = False,
    cluster: Any = None,
    namespace: str | None = None,
    version_name: str | None = None,
) -> dict[str, str]:
    """Upload the pipeline version, then run it (or, with ``schedule`` = a cron expression, create a
    recurring run of it through the KFP API); the ids."""
    from lusynth_pipelines.experiment import PIPELINE_NAME, ClusterSettings

    client = _client(host, namespace)
    with tempfile.TemporaryDirectory() as tmp:
        package = str(compile_to(Path(tmp) / "pipeline.yaml", cluster=cluster or ClusterSettings(gpu=gpu)))
        ids = upload_package(client, package, version_name=version_name, namespace=namespace)
    exp = client.create_experiment(experiment, namespace=namespace)
    if schedule:
        # KFP crons have six fields (seconds first); accept the usual five and prepend "0"
        cron = schedule if len(schedule.split()) == 6 else "0 " + schedule
        job = client.create_recurring_run(
            experiment_id=exp.experiment_id, job_name=job_name or f"{PIPELINE_NAME}-scheduled", cron_expression=cron,
            params=arguments, pipeline_id=ids["pipeline_id"], version_id=ids["version_id"], max_concurrency=1, no_catchup=True,
        )
        return {**ids, "recurring_run_id": str(job.recurring_run_id), "cron": cron}
    run = client.run_pipeline(experiment_id=exp.experiment_id, job_name=job_name or f"{PIPELINE_NAME} {ids['version_name']}",
                              params=arguments, pipeline_id=ids["pipeline_id"], version_id=ids["version_id"])
    return {**ids, "run_id": str(run.run_id)}


def compile_to(out: str | os.PathLike[str], *, gpu: bool = False, cluster: Any = None) -> Path:
    """Write the KFP IR YAML for a cluster to ``out``."""
    from lusynth_pipelines.experiment import ClusterSettings, compile_pipeline

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return Path(compile_pipeline(str(out), cluster=cluster or ClusterSettings(gpu=gpu)))
