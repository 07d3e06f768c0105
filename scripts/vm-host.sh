#!/usr/bin/env bash
# Prepares this machine to run isolated local VMs (hub/src/compute/sandbox.rs):
# the tools (bubblewrap, slirp4netns, newuidmap), root's range of subordinate
# uids and gids that VMs map to, and the VM image's root file system
# (scripts/vm-rootfs.sh). Idempotent; run as root. Without root it only says
# why local VMs will run unisolated (the hub then serves one user).
#
# Usage: scripts/vm-host.sh [ROOTFS_DIR]
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
base=${AETHER_VM_UID_BASE:-1000000000}
say() { printf 'vm-host: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    say "not root: local VMs can't be isolated here, so the hub will run them as plain processes and serve one user"
    exit 1
fi

need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
command -v newuidmap >/dev/null || need+=(uidmap)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v unshare >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 1,000,000,000 uids from `base`: 65,536 for VMs (all VMs map the same
# range; each has its own namespaces), the rest spare.
if ! grep -q "^root:$base:" /etc/subuid 2>/dev/null; then
    usermod --add-subuids "$base-$((base + 999999999))" root
fi
if ! grep -q "^root:$base:" /etc/subgid 2>/dev/null; then
    usermod --add-subgids "$base-$((base + 999999999))" root
fi

AETHER_VM_UID_BASE=$base "$repo/scripts/vm-rootfs.sh" "$@"
