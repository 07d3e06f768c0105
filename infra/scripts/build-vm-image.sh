#!/usr/bin/env bash
# Builds aether's VM image (Dockerfile.vm) and pushes it to Fly's registry as
#   registry.fly.io/<vm-app>:<label>
# which is the image the hub gives the Fly Machines API for project machines.
# Fly builds it on a remote builder: no local Docker engine is needed.
#
# Usage: infra/scripts/build-vm-image.sh [--app VM_APP] [--label LABEL] [--local]
#   --app    the Fly app that holds project machines (default: $AETHER_VM_APP)
#   --label  the image tag (default: vm-<git short sha>[-dirty], or vm-<UTC time>)
#   --local  build with the local Docker engine (docker build) and do not push;
#            tags the image aether-vm:<label>
#
# The VM app must exist (`fly apps create <vm-app>`); flyctl must be logged in
# (`fly auth login`) or FLY_API_TOKEN set.
set -euo pipefail

die() { printf 'build-vm-image: error: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

APP=${AETHER_VM_APP:-}
LABEL=
LOCAL=false
while [ $# -gt 0 ]; do
    case $1 in
        --app) [ $# -ge 2 ] || die "--app needs a value"; APP=$2; shift 2 ;;
        --app=*) APP=${1#--app=}; shift ;;
        --label) [ $# -ge 2 ] || die "--label needs a value"; LABEL=$2; shift 2 ;;
        --label=*) LABEL=${1#--label=}; shift ;;
        --local) LOCAL=true; shift ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# The build tool first: without it nothing below matters.
FLY=
if $LOCAL; then
    command -v docker >/dev/null 2>&1 || die "docker is not installed: --local needs a Docker engine (or drop --local to build on Fly)"
else
    for candidate in flyctl fly; do
        if command -v "$candidate" >/dev/null 2>&1; then FLY=$candidate; break; fi
    done
    [ -n "$FLY" ] || die "flyctl is not installed (neither 'flyctl' nor 'fly' is on PATH).
Install it (https://fly.io/docs/flyctl/install/) and run 'fly auth login', or use --local with a Docker engine."
fi

[ -f Dockerfile.vm ] || die "missing Dockerfile.vm at $ROOT"
[ -f .dockerignore ] ||
    die "no .dockerignore at the repository root: copy infra/.dockerignore there (else target/ is sent to the builder)"

if [ -z "$LABEL" ]; then
    if sha=$(git rev-parse --short=12 HEAD 2>/dev/null); then
        LABEL="vm-$sha"
        [ -z "$(git status --porcelain 2>/dev/null)" ] || LABEL="$LABEL-dirty"
    else
        LABEL="vm-$(date -u +%Y%m%d%H%M%S)"
    fi
fi

if $LOCAL; then
    set -x
    DOCKER_BUILDKIT=1 docker build -f Dockerfile.vm -t "aether-vm:$LABEL" .
    exit 0
fi

[ -n "$APP" ] || die "name the Fly app of the project VMs: --app NAME or AETHER_VM_APP=NAME"

# `fly deploy --build-only` wants an app config; the VM app has no fly.toml of
# its own (its machines are created by the hub through the Machines API), so
# give it a minimal one.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'app = "%s"\n' "$APP" >"$tmp/fly.toml"

(
    set -x
    "$FLY" deploy . --config "$tmp/fly.toml" --dockerfile Dockerfile.vm \
        --build-only --push --remote-only --image-label "$LABEL"
)
printf 'build-vm-image: pushed registry.fly.io/%s:%s\n' "$APP" "$LABEL"
printf 'build-vm-image: give this image reference to the hub for new project machines.\n'
