"""Compile the pipeline and submit it to a Kubeflow Pipelines host (once, or on a schedule)."""

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


def submit(
    host: str,
    *,
    arguments: dict[str, Any],
    experiment: str = "lusynth",
    schedule: str | None = None,
    job_name: str | None = None,
    gpu: bool = False,
    namespace: str | None = None,
) -> dict[str, str]:
    """Create a run (or, with ``schedule`` = a cron expression, a recurring run); return its ids."""
    import kfp

    from lusynth_pipelines.experiment import PIPELINE_NAME, compile_pipeline

    check_host(host)
    client = kfp.Client(host=host, namespace=namespace)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(os.path.join(tmp, "pipeline.yaml"), gpu=gpu)
        exp = client.create_experiment(experiment, namespace=namespace)
        if schedule:
            # KFP crons have six fields (seconds first); accept the usual five and prepend "0"
            cron = schedule if len(schedule.split()) == 6 else "0 " + schedule
            job = client.create_recurring_run(
                experiment_id=exp.experiment_id, job_name=job_name or f"{PIPELINE_NAME}-scheduled",
                cron_expression=cron, pipeline_package_path=package, params=arguments, max_concurrency=1,
            )
            return {"recurring_run_id": job.recurring_run_id, "cron": cron}
        run = client.create_run_from_pipeline_package(
            package, arguments=arguments, run_name=job_name, experiment_name=experiment, namespace=namespace,
        )
        return {"run_id": run.run_id}


def compile_to(out: str | os.PathLike[str], *, gpu: bool = False) -> Path:
    from lusynth_pipelines.experiment import compile_pipeline

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return Path(compile_pipeline(str(out), gpu=gpu))
