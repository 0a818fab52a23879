"""The component image: the Dockerfile's contract (always checked) and a real podman build and run
(only with ``LUSYNTH_IMAGE_TEST=1``: the first build takes several minutes and needs root + podman)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import lusynth
from lusynth.data.framestore import open_store

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"
BUILD_SCRIPT = ROOT / "infra" / "build_image.sh"
# podman on this kernel: runc (crun fails on the cgroup v1 layout) and explicit ulimits
PODMAN_RUN = ["podman", "--runtime", "runc", "run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile text -> (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    logical, parts = [], []
    for line in text.splitlines():
        if not parts and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if parts and line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        parts.append(line.rstrip().removesuffix("\\"))
        if not line.rstrip().endswith("\\"):
            logical.append(" ".join(parts))
            parts = []
    out = []
    for item in logical:
        word, _, rest = item.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in instructions:
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def test_dockerfile_contract() -> None:
    """Multi-stage, base and target chosen by build args, final stage non-root with no entrypoint."""
    instructions = _instructions(DOCKERFILE.read_text())
    preamble_args = [rest.split("=")[0] for word, rest in instructions[: [w for w, _ in instructions].index("FROM")] if word == "ARG"]
    assert {"BASE_IMAGE", "TARGET"} <= set(preamble_args), "BASE_IMAGE and TARGET must be build args usable in FROM"
    stages = _stages(instructions)
    assert len(stages) >= 3, "expected a dependency/build stage and a runtime stage"
    final = stages[-1]
    assert any(w == "COPY" and rest.startswith("--from=") for w, rest in final), "the runtime stage must copy the built venv"
    users = [rest for w, rest in final if w == "USER"]
    assert users, "the runtime stage must set USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"runtime user is root: {users[-1]}"
    assert not any(w == "ENTRYPOINT" for w, _ in final), "an ENTRYPOINT would wrap KFP's `sh -c ... python3 -m kfp...` command"
    assert any(w == "CMD" and "lusynth" in rest for w, rest in final)
    assert any(w == "WORKDIR" and rest == "/work" for w, rest in final)
    # no compiler toolchain in any stage that the runtime starts from
    text = DOCKERFILE.read_text()
    assert not re.search(r"\b(build-essential|gcc|g\+\+)\b", text), "no compilers in the image"


def test_dockerignore_keeps_the_source_and_drops_the_rest() -> None:
    """The context is an allow-list: the package source and pins go in, venvs and run outputs never."""
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", ".dockerignore should start by excluding everything"
    for needed in ("!src/", "!pyproject.toml", "!constraints.txt", "!infra/", "!components/", "!pipelines/"):
        assert needed in lines, f".dockerignore must re-include {needed[1:]}"
    assert "infra/.build/" in lines, "the debootstrap rootfs must not be sent as build context"


def test_build_script_is_valid_bash() -> None:
    """A syntax error in the build script would only show up on the platform team's machine."""
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run([bash, "-n", str(BUILD_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.access(BUILD_SCRIPT, os.X_OK), "infra/build_image.sh must be executable"


needs_image = pytest.mark.skipif(os.environ.get("LUSYNTH_IMAGE_TEST") != "1", reason="set LUSYNTH_IMAGE_TEST=1 to build and run the image (minutes; root + podman)")


@pytest.fixture(scope="module")
def image() -> str:
    """Build the image with infra/build_image.sh (cached layers make a rebuild quick); its tag."""
    if shutil.which("podman") is None:
        pytest.fail("LUSYNTH_IMAGE_TEST=1 but podman is missing: apt-get install -y podman runc debootstrap")
    result = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"infra/build_image.sh failed:\n{result.stderr[-4000:]}"
    return result.stdout.strip().splitlines()[-1]


def _run(image: str, *args: str, mounts: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    volumes = [a for m in mounts for a in ("-v", m)]
    return subprocess.run([*PODMAN_RUN, "-e", "LUSYNTH_THREADS=1", *volumes, image, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.image
@needs_image
def test_image_prints_the_package_version(image: str) -> None:
    result = _run(image, "lusynth", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"lusynth {lusynth.__version__}"


@pytest.mark.image
@needs_image
def test_image_runs_as_non_root_with_kfp_on_path(image: str) -> None:
    """KFP starts components with `python3 -m kfp.dsl.executor_main`: that python3 must hold kfp and lusynth."""
    result = _run(image, "sh", "-c", "id -u; command -v python3; python3 -c 'import kfp.dsl.executor_main, lusynth; print(\"ok\")'")
    assert result.returncode == 0, result.stderr
    uid, python3, ok = result.stdout.split()
    assert uid == "10001"
    assert python3 == "/opt/lusynth/bin/python3"
    assert ok == "ok"


@pytest.mark.image
@needs_image
def test_image_ingests_the_phantom(image: str, tmp_path: Path) -> None:
    """One real stage in the container, written to a host directory and read back with open_store."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the container's uid 10001 writes here
    result = _run(image, "lusynth", "ingest", "--out", "/tmp/x/store", "--quiet", mounts=(f"{out}:/tmp/x",))
    assert result.returncode == 0, result.stderr
    store = open_store(out / "store")
    assert len(store.manifest) > 0
    assert store.frames.shape[0] == len(store.manifest)
    assert (out / "store").stat().st_uid == 10001, "files written in the container should belong to the lusynth user"
