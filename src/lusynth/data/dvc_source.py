"""DVC-tracked inputs: ``dvc://PATH[@REV]`` names a DVC-tracked path at a git revision, so a
pipeline run can pin the exact data version it ingests.

The repository is ``LUSYNTH_DVC_REPO`` (a local path or a git URL) or the current directory; the
data comes from the DVC cache or the repository's remote (S3 through boto3). The revision is
resolved to a commit SHA, which ingest records as the data's DVC revision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lusynth.errors import InputError

SCHEME = "dvc://"


@dataclass(frozen=True)
class DvcUri:
    path: str
    rev: str | None
    repo: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.path}" + (f"@{self.rev}" if self.rev else "")


def parse_dvc_uri(uri: str) -> DvcUri:
    """``dvc://data/raw@v1.0`` -> DvcUri(path='data/raw', rev='v1.0', repo=...)."""
    if not uri.startswith(SCHEME):
        raise InputError(f"{uri!r} is not a dvc:// URI (expected dvc://PATH[@REV])")
    rest = uri[len(SCHEME):]
    path, _, rev = rest.rpartition("@") if "@" in rest else (rest, "", "")
    if not path:
        raise InputError(f"{uri!r}: no path (expected dvc://PATH[@REV], e.g. dvc://data/raw@v1)")
    return DvcUri(path=path.strip("/"), rev=rev or None, repo=os.environ.get("LUSYNTH_DVC_REPO", "."))


def fetch(uri: str, dest: str | os.PathLike[str]) -> tuple[Path, str]:
    """Materialise a DVC-tracked path at ``dest``; return (local path, resolved commit SHA)."""
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from scmrepo.exceptions import SCMError

    loc = parse_dvc_uri(uri)
    target = Path(dest) / Path(loc.path).name
    try:
        with Repo(loc.repo) as repo:
            sha = repo.scm.resolve_rev(loc.rev or "HEAD")
        fs = DVCFileSystem(loc.repo, rev=sha)
        if not fs.exists(loc.path):
            raise InputError(f"{uri}: {loc.path!r} is not tracked in {loc.repo} at {loc.rev or 'HEAD'}")
        fs.get(loc.path, str(target), recursive=True)
    except (DvcException, SCMError) as exc:
        raise InputError(f"{uri}: cannot read it from the DVC repository {loc.repo!r} ({exc}); check LUSYNTH_DVC_REPO, the revision and `dvc pull` access") from None
    return target, sha
