"""The images the components run in (infra/Dockerfile builds both targets).

The pipeline is compiled against an immutable reference: a version tag (or a digest) of the
published image, never a mutable ``latest`` or a local ``localhost/...`` tag, so a rerun of an old
pipeline version runs the code it was compiled with. ``LUSYNTH_IMAGE`` / ``LUSYNTH_GPU_IMAGE``
(read when the pipeline is compiled) or ``lusynth pipeline compile|submit --image/--gpu-image``
change them; ``lusynth run`` ignores both (the local subprocess runner uses the installed package).
Components import lusynth inside their bodies so the same code runs in both places.
"""

import os
import re

from lusynth import __version__

#: where the platform team pushes the image (infra/README.md); the overlays' `images:` use the same name
REPOSITORY = "ghcr.io/lusynth/lusynth"
#: the CPU image (Dockerfile TARGET=cpu), tagged with the package version
IMAGE = os.environ.get("LUSYNTH_IMAGE", f"{REPOSITORY}:{__version__}")
#: the CUDA image (Dockerfile TARGET=cuda), used by the GPU tasks of a pipeline compiled with --gpu
GPU_IMAGE = os.environ.get("LUSYNTH_GPU_IMAGE", f"{REPOSITORY}:{__version__}-cuda")

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_TAG = re.compile(r":([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


def immutable_image_problem(ref: str) -> str | None:
    """Why ``ref`` is not an immutable image reference (None when it is: a digest, or a version tag
    that is not ``latest``/``main``/... on a registry other than ``localhost``)."""
    if _DIGEST.search(ref):
        return None
    m = _TAG.search(ref.rsplit("/", 1)[-1])
    if m is None:
        return "it has no tag (it means :latest)"
    if m.group(1) in ("latest", "main", "master", "dev", "edge", "nightly", "stable"):
        return f"the tag :{m.group(1)} moves"
    if ref.startswith("localhost/") or ref.startswith("localhost:"):
        return "a localhost/ image exists only on the machine that built it"
    return None
