#!/usr/bin/env bash
# Build the lusynth CPU image on a machine with podman but no Docker engine and no image registry.
#
#   infra/build_image.sh              # prints the image tag on its last line
#   infra/build_image.sh --no-cache   # rebuild every layer (the base and wheelhouse stay cached)
#
# Three cached steps, each skipped when its inputs did not change:
#   1. base image  localhost/lusynth-base:bookworm: debootstrap (minbase, Debian bookworm =
#      Python 3.11) from the Debian mirror apt uses here, then `podman import`. Rootfs cached in
#      infra/.build/ (git-ignored).
#   2. wheelhouse  infra/wheelhouse/ (git-ignored): `pip wheel` of lusynth's pinned dependency set
#      on this host, where pip finds the CPU torch wheel on local disk, so the build needs no index.
#   3. image       podman build of infra/Dockerfile with BASE_IMAGE=the base above.
#
# Environment: LUSYNTH_IMAGE_TAG (default localhost/lusynth:<version>-cpu), DEBIAN_MIRROR (default:
# the first deb.debian.org-style URI in /etc/apt/sources.list*), PYTHON (a Python 3.11 with pip that
# sees the CPU torch wheel; default .venv/bin/python).
# podman needs `--runtime runc` and explicit ulimits on this kernel (crun fails on its cgroup v1 layout).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="$ROOT/infra/.build"
WHEELHOUSE="$ROOT/infra/wheelhouse"
BASE_IMAGE="localhost/lusynth-base:bookworm"
BASE_PACKAGES="python3,python3-venv,ca-certificates,libgomp1"
PODMAN=(podman --runtime runc)
ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

die() { echo "build_image.sh: $*" >&2; exit 1; }
step() { echo "==> $*" >&2; }

need() {  # need COMMAND DEBIAN_PACKAGE
    command -v "$1" >/dev/null 2>&1 ||
        die "'$1' not found. Install it with: apt-get update && apt-get install -y $2"
}

NO_CACHE=()
for arg in "$@"; do
    case "$arg" in
        --no-cache) NO_CACHE=(--no-cache) ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

need podman "podman runc uidmap"
need runc "runc"
[ "$(id -u)" = 0 ] || die "run as root: podman here runs rootful (rootless needs subuid ranges this machine lacks)"
[ -x "$PYTHON" ] || die "no Python at '$PYTHON': run 'make venv' first or set PYTHON=/path/to/python3.11"
VERSION="$("$PYTHON" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$ROOT/pyproject.toml")"
TAG="${LUSYNTH_IMAGE_TAG:-localhost/lusynth:${VERSION}-cpu}"

# ---- 1. base image --------------------------------------------------------------------------
debian_mirror() {
    [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
    # deb822 "URIs:" lines and one-line "deb URI suite" lines; the first non-security debian URI
    # (grep exits 2 for a glob that matched no file, e.g. no *.list: under pipefail that must not end the script)
    { grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list || true; } |
        grep -oE 'https?://[^ ]+/debian/?' | head -n1 || true
}

base_key="bookworm minbase $BASE_PACKAGES"
if "${PODMAN[@]}" image exists "$BASE_IMAGE" &&
   [ "$("${PODMAN[@]}" image inspect --format '{{ index .Labels "io.lusynth.base-key" }}' "$BASE_IMAGE" 2>/dev/null)" = "$base_key" ]; then
    step "base image $BASE_IMAGE: cached"
else
    mkdir -p "$CACHE"
    if [ "$(cat "$CACHE/rootfs.key" 2>/dev/null)" != "$base_key" ] || [ ! -d "$CACHE/rootfs" ]; then
        need debootstrap "debootstrap"
        mirror="$(debian_mirror)"
        [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*; set DEBIAN_MIRROR=http://deb.debian.org/debian"
        step "debootstrap bookworm from $mirror (about 2 minutes)"
        rm -rf "$CACHE/rootfs" "$CACHE/rootfs.tmp" "$CACHE/rootfs.key"
        debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$CACHE/rootfs.tmp" "$mirror" \
            > "$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE/debootstrap.log"
        # the .debs and package lists are 60+ MB that no container needs
        rm -rf "$CACHE/rootfs.tmp/var/cache/apt/archives/"*.deb "$CACHE/rootfs.tmp/var/lib/apt/lists/"*
        mv "$CACHE/rootfs.tmp" "$CACHE/rootfs"
        echo "$base_key" > "$CACHE/rootfs.key"
    else
        step "rootfs: cached in $CACHE/rootfs"
    fi
    step "podman import -> $BASE_IMAGE"
    tar -C "$CACHE/rootfs" -c . | "${PODMAN[@]}" import \
        --change "LABEL io.lusynth.base-key=\"$base_key\"" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
fi

# ---- 2. wheelhouse --------------------------------------------------------------------------
wheel_key="$(cat "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ "$(cat "$WHEELHOUSE/.key" 2>/dev/null)" = "$wheel_key" ]; then
    step "wheelhouse infra/wheelhouse: cached ($(ls "$WHEELHOUSE"/*.whl | wc -l) wheels)"
else
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
        die "'$PYTHON' is not Python 3.11; the image's Python is 3.11 (Debian bookworm), wheels must match"
    step "wheelhouse: pip wheel of the pinned dependency set (about 1 minute with a warm pip cache)"
    rm -rf "$WHEELHOUSE.tmp"
    "$PYTHON" -m pip wheel -q -c "$ROOT/constraints.txt" -w "$WHEELHOUSE.tmp" "$ROOT" "pip==26.0" setuptools wheel
    # the image builds lusynth from the context's source, never from a stale wheel
    rm -f "$WHEELHOUSE.tmp"/lusynth-*.whl
    ls "$WHEELHOUSE.tmp"/torch-*+cpu-*.whl >/dev/null 2>&1 ||
        die "pip did not find a CPU torch wheel (got: $(ls "$WHEELHOUSE.tmp" | grep '^torch-' || echo none)); put torch-2.13.0+cpu in pip's find-links (see /etc/xdg/pip/pip.conf)"
    rm -rf "$WHEELHOUSE"
    mv "$WHEELHOUSE.tmp" "$WHEELHOUSE"
    echo "$wheel_key" > "$WHEELHOUSE/.key"
fi

# ---- 3. image -------------------------------------------------------------------------------
step "podman build -> $TAG"
# --network host: RUN steps need no network with the wheelhouse, but host networking avoids
# setting up a CNI bridge for nothing (and works where netavark/slirp are missing).
"${PODMAN[@]}" build "${NO_CACHE[@]}" "${ULIMITS[@]}" --network host \
    -f "$ROOT/infra/Dockerfile" \
    --build-arg TARGET=cpu \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg VERSION="$VERSION" \
    -t "$TAG" "$ROOT" >&2
step "built $TAG ($("${PODMAN[@]}" image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$TAG"
