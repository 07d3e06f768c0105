#!/usr/bin/env bash
# Builds the root file system of local VMs from the VM image's own recipe:
# a Debian bookworm minbase (debootstrap, what debian:bookworm-slim is made
# from) with infra/vm/setup.sh run in it, as Dockerfile.vm does for Fly.
#
# Usage (as root): scripts/vm-rootfs.sh [DIR]   (default /var/cache/aether/vm-rootfs)
# AETHER_VM_UID_BASE (default 1000000000): the host uid VMs' root maps to.
# Prints DIR when done. The root is rebuilt only when infra/vm/ changed since
# the last build (a stamp of its files' hash), and is swapped in whole, so a
# hub never sees a half-built root. Needs debootstrap and a Debian mirror
# (the host's apt source, else deb.debian.org).
set -euo pipefail
export LC_ALL=C

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-/var/cache/aether/vm-rootfs}
out=${out%/}
src="$repo/infra/vm"
say() { printf 'vm-rootfs: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install -y debootstrap)"

base=${AETHER_VM_UID_BASE:-1000000000}
stamp=$(cd "$src" && { sha256sum setup.sh first-boot.sh sshd_config tmux.conf; echo "$base"; } | sha256sum | cut -c1-16)
if [ -f "$out/.aether-rootfs" ] && [ "$(cat "$out/.aether-rootfs")" = "$stamp" ]; then
    echo "$out"
    exit 0
fi

mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$(dirname "$out")/.rootfs-build.XXXXXX")
log="$work.log"
unmount() {
    for m in dev/pts proc; do
        mountpoint -q "$work/root/$m" 2>/dev/null && umount -l "$work/root/$m"
    done
    return 0
}
cleanup() {
    unmount
    rm -rf --one-file-system -- "$work"
}
trap cleanup EXIT
root="$work/root"

mirrors=()
while read -r uri; do mirrors+=("$uri"); done < <(
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -E '^[[:space:]]*(deb|URIs:)[[:space:]]' | grep -Eo 'https?://[^ ]*/debian/?' |
        sed 's:/*$::' | awk '!seen[$0]++')
mirrors+=(http://deb.debian.org/debian)

built=false
for m in "${mirrors[@]}"; do
    say "debootstrap --variant=minbase bookworm from $m"
    if debootstrap --variant=minbase bookworm "$root" "$m" >"$log" 2>&1; then
        built=true
        break
    fi
    tail -n 5 "$log" >&2
    rm -rf --one-file-system -- "$root"
done
$built || die "debootstrap failed with every mirror; see $log"

mount -t proc proc "$root/proc"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$root/dev/pts"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
cp -a "$src" "$root/tmp/aether-vm"
say "running infra/vm/setup.sh in it"
chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 bash /tmp/aether-vm/setup.sh >>"$log" 2>&1 ||
    { tail -n 30 "$log" >&2; die "setup.sh failed; see $log"; }
unmount
rm -rf "$root/tmp/aether-vm"

# What the local provider binds over a read-only root: aetherd, and the
# network that slirp4netns gives the VM (its DNS forwarder is 10.0.2.3).
install -m 0755 /dev/null "$root/usr/local/bin/aetherd"
printf 'nameserver 10.0.2.3\n' >"$root/etc/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n127.0.1.1 vm\n' >"$root/etc/hosts"
echo vm >"$root/etc/hostname"
echo "$stamp" >"$root/.aether-rootfs"

# VMs run in a user namespace that maps their uids 0-65535 to the host's
# BASE-(BASE+65535), so the root is owned by that range: its root is the
# VMs' root, and nobody on the host. chown clears set-uid bits (sudo), so
# each file's mode is put back after.
say "shifting owners by $base"
python3 - "$root" "$base" <<'PY'
import os, stat, sys
root, base = sys.argv[1], int(sys.argv[2])
for dirpath, dirs, files in os.walk(root):
    for name in [dirpath] + [os.path.join(dirpath, n) for n in dirs + files]:
        st = os.lstat(name)
        if st.st_uid >= base:
            continue
        os.lchown(name, base + st.st_uid, base + st.st_gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, stat.S_IMODE(st.st_mode))
PY

rm -rf --one-file-system -- "$out.old"
[ -e "$out" ] && mv "$out" "$out.old"
mv "$root" "$out"
rm -rf --one-file-system -- "$out.old" "$log"
say "built $out"
echo "$out"
