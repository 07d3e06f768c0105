#!/usr/bin/env bash
# aether VM first-boot step: installed as /opt/aether/first-boot.sh by
# infra/vm/setup.sh and run as root by aetherd, before anything else, on EVERY
# boot (it is idempotent; "first boot" is about the volume, not the machine).
#
# On Fly the project's volume is mounted at /home/dev and hides whatever the
# image had there. A new volume is an empty ext4 file system (only
# lost+found), owned by root. This script:
#   1. seeds the home from /opt/aether/home-skel when it is empty (ignoring
#      lost+found); a home that has anything in it is never overwritten;
#   2. makes the home dev's and not group/world-writable (sshd StrictModes);
#   3. ensures ~/.ssh exists, mode 700, and authorized_keys (if any) is 600;
#   4. creates the machine's SSH host keys on the volume, once, under
#      ~/.aether/hostkeys (root-only), so they survive restarts and image
#      updates; sshd_config's HostKey lines point there;
#   5. creates /run/sshd, sshd's privilege-separation directory (systemd would
#      make it; there is no systemd here).
#
# Environment (all optional): AETHER_HOME (default /home/dev),
# AETHER_HOME_SKEL (default /opt/aether/home-skel), AETHER_USER (default dev).
set -euo pipefail

HOME_DIR=${AETHER_HOME:-/home/dev}
SKEL_DIR=${AETHER_HOME_SKEL:-/opt/aether/home-skel}
DEV_USER=${AETHER_USER:-dev}
STATE_DIR="$HOME_DIR/.aether"
HOSTKEY_DIR="$STATE_DIR/hostkeys"

log() { printf 'first-boot: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
id "$DEV_USER" >/dev/null 2>&1 || die "user $DEV_USER does not exist"
DEV_UID=$(id -u "$DEV_USER")
DEV_GID=$(id -g "$DEV_USER")

# Move a path out of the way when it is a symlink or not a directory where we
# need a directory. This script runs as root inside a user-writable home:
# never follow a link the user (or an agent) left there.
ensure_real_dir() {
    local path=$1
    if [ -L "$path" ] || { [ -e "$path" ] && [ ! -d "$path" ]; }; then
        local aside
        aside="$path.moved-by-aether.$(date +%s)"
        log "$path is not a plain directory; moving it to $aside"
        mv -- "$path" "$aside"
    fi
}

# --- 1. seed an empty home --------------------------------------------------
[ -L "$HOME_DIR" ] && die "$HOME_DIR is a symlink"
mkdir -p -- "$HOME_DIR"

home_is_empty() {
    # Empty but for ext4's lost+found.
    [ -z "$(find "$HOME_DIR" -mindepth 1 -maxdepth 1 ! -name lost+found -print -quit)" ]
}

if home_is_empty; then
    [ -d "$SKEL_DIR" ] || die "skeleton $SKEL_DIR is missing"
    log "seeding empty $HOME_DIR from $SKEL_DIR"
    # -n: never overwrite, even if something appeared meanwhile.
    cp -a -n -- "$SKEL_DIR/." "$HOME_DIR/"
    # Everything just copied belongs to the user. The home was empty, so this
    # touches only the seeded files.
    find "$HOME_DIR" -mindepth 1 -maxdepth 1 ! -name lost+found \
        -exec chown -R --no-dereference "$DEV_UID:$DEV_GID" {} +
else
    log "$HOME_DIR already has content: not seeding"
fi

# --- 2. the home itself -----------------------------------------------------
# Only the top directory, every boot: a new volume's root is root-owned. The
# user's files are never re-owned wholesale.
chown "$DEV_UID:$DEV_GID" "$HOME_DIR"
chmod go-w "$HOME_DIR"

# --- 3. ~/.ssh ----------------------------------------------------------------
ensure_real_dir "$HOME_DIR/.ssh"
install -d -m 0700 -o "$DEV_UID" -g "$DEV_GID" "$HOME_DIR/.ssh"
AUTH_KEYS="$HOME_DIR/.ssh/authorized_keys"
if [ -f "$AUTH_KEYS" ] && [ ! -L "$AUTH_KEYS" ]; then
    chown "$DEV_UID:$DEV_GID" "$AUTH_KEYS"
    chmod 0600 "$AUTH_KEYS"
fi

# --- 4. per-machine SSH host keys on the volume --------------------------------
# ~/.aether is aether's (root-owned, 755); hostkeys/ is root-only (700). The
# user cannot delete them by accident, and they live as long as the volume.
ensure_real_dir "$STATE_DIR"
install -d -m 0755 -o 0 -g 0 "$STATE_DIR"
ensure_real_dir "$HOSTKEY_DIR"
install -d -m 0700 -o 0 -g 0 "$HOSTKEY_DIR"
# Leftovers of a generation interrupted by a crash.
find "$HOSTKEY_DIR" -mindepth 1 -maxdepth 1 -name '.tmp.*' -exec rm -rf -- {} +

make_host_key() {
    local type=$1 key="$HOSTKEY_DIR/ssh_host_$1_key"
    shift
    if [ ! -s "$key" ]; then
        local tmp
        tmp=$(mktemp -d "$HOSTKEY_DIR/.tmp.XXXXXX")
        ssh-keygen -q -t "$type" "$@" -N '' -C "aether-host-$type" -f "$tmp/key"
        chmod 0600 "$tmp/key"
        # Public half first, private last: a key file exists only complete.
        mv -f -- "$tmp/key.pub" "$key.pub"
        mv -f -- "$tmp/key" "$key"
        rmdir -- "$tmp"
        log "generated $key"
    elif [ ! -s "$key.pub" ]; then
        ssh-keygen -y -f "$key" >"$key.pub"
    fi
    chown 0:0 "$key" "$key.pub"
    chmod 0600 "$key"
    chmod 0644 "$key.pub"
}
make_host_key ed25519
make_host_key rsa -b 3072

# --- 5. runtime directory for sshd ------------------------------------------
install -d -m 0755 -o 0 -g 0 /run/sshd

log "done"
