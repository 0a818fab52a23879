"""Lineage tags: where a run came from (git commit, data digests, DVC revision, KFP run, profile, seed)."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

GIT_COMMIT_ENV = "LUSYNTH_GIT_COMMIT"
DVC_REV_ENV = "LUSYNTH_DVC_REV"
KFP_RUN_ID_ENV = "KFP_RUN_ID"
PROFILE_ENV = "LUSYNTH_PROFILE"


@functools.lru_cache(maxsize=8)
def _git_head(cwd: str) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) >= 40 else None


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """``git rev-parse HEAD`` of the working directory's repository, else ``LUSYNTH_GIT_COMMIT``.

    The package directory is tried after ``cwd``: a KFP/DVC task may run from a scratch directory.
    """
    for d in (cwd or os.getcwd(), str(Path(__file__).resolve().parent)):
        sha = _git_head(str(d))
        if sha:
            return sha
    return os.environ.get(GIT_COMMIT_ENV) or None


def _resolved(value: str | None) -> str | None:
    """An env value, unless empty or an unresolved KFP placeholder such as ``{{$.pipeline_job_uuid}}``."""
    if not value or value.startswith("{{"):
        return None
    return value


def kfp_run_id() -> str | None:
    """The KFP run id: ``KFP_RUN_ID`` (the pipeline passes ``dsl.PIPELINE_JOB_ID_PLACEHOLDER`` into it).

    KFP does not put the run id in a task pod's environment by itself (it sets ``KFP_POD_NAME``
    and ``KFP_POD_UID``), so the component must forward the placeholder's value.
    """
    return _resolved(os.environ.get(KFP_RUN_ID_ENV))


def lineage_tags(
    *,
    data_digests: Mapping[str, str] | None = None,
    profile: str | None = None,
    seed: int | None = None,
) -> dict[str, str]:
    """Tags that say where a run came from: code, data, orchestration run, profile, seed.

    ``data_digests`` maps a role (``real``, ``synthetic.consolidation``, ...) to a frame store's
    content digest; each becomes ``lusynth.data.<role>``, and ``lusynth.data_digest`` holds them
    all, sorted, so one tag identifies the data version of the run.
    """
    tags: dict[str, str] = {}
    sha = git_commit()
    if sha:
        tags["lusynth.git_commit"] = sha
        tags["mlflow.source.git.commit"] = sha
    digests = {k: str(v) for k, v in (data_digests or {}).items() if v}
    for role, d in sorted(digests.items()):
        tags[f"lusynth.data.{role}"] = d
    if digests:
        tags["lusynth.data_digest"] = ",".join(f"{k}={v}" for k, v in sorted(digests.items()))[:5000]
    dvc = _resolved(os.environ.get(DVC_REV_ENV))
    if dvc:
        tags["lusynth.dvc_rev"] = dvc
    run = kfp_run_id()
    if run:
        tags["lusynth.kfp_run_id"] = run
    pod = _resolved(os.environ.get("KFP_POD_NAME"))
    if pod:
        tags["lusynth.kfp_pod"] = pod
    prof = profile or _resolved(os.environ.get(PROFILE_ENV))
    if prof:
        tags["lusynth.profile"] = prof
    if seed is not None:
        tags["lusynth.seed"] = str(int(seed))
    try:
        from lusynth import __version__

        tags["lusynth.version"] = __version__
    except ImportError:  # pragma: no cover - the package always has a version
        pass
    return tags
