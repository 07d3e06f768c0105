#!/usr/bin/env bash
# Builds the aether VM's userland on a Debian bookworm root. Run as root, once,
# at image build time (Dockerfile.vm); infra/scripts/check-vm-setup.sh runs it
# in a debootstrapped chroot. Idempotent: running it again changes nothing
# that matters.
#
# It expects its siblings (sshd_config, tmux.conf, first-boot.sh) next to it.
set -euo pipefail

SRC_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
DEV_USER=dev
DEV_UID=1000
DEV_HOME=/home/dev
AETHER_DIR=/opt/aether

log() { printf 'setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
for f in sshd_config tmux.conf first-boot.sh; do
    [ -f "$SRC_DIR/$f" ] || die "missing $SRC_DIR/$f"
done

export DEBIAN_FRONTEND=noninteractive

# --- packages ------------------------------------------------------------------
# Keep package scripts from starting daemons (sshd) during the build. Docker's
# Debian images normally ship such a policy-rc.d; where there is none, add one
# for the duration of this script only.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
fi

PACKAGES=(
    # the SSH server agents reach through the tunnel (sftp for IDEs)
    openssh-server openssh-sftp-server openssh-client
    # terminals and the basics a person expects
    tmux less vim-tiny procps locales sudo
    # fetching and version control
    ca-certificates curl git
    # toolchains
    build-essential
    python3 python3-pip python3-venv python3-dev
    nodejs npm
    # archives that language installers expect
    unzip xz-utils
)

log "installing packages"
apt-get update -q
apt-get install -y -q --no-install-recommends -o Acquire::Retries=3 "${PACKAGES[@]}"

# --- locale --------------------------------------------------------------------
log "generating en_US.UTF-8"
sed -i -E 's/^#[[:space:]]*(en_US\.UTF-8 UTF-8)/\1/' /etc/locale.gen
grep -qx 'en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' >>/etc/locale.gen
locale-gen
# /etc/default/locale: read by pam_env for SSH sessions.
update-locale LANG=en_US.UTF-8

# --- the user ------------------------------------------------------------------
# uid/gid 1000 so that files on the volume keep their owner across images.
if ! getent group "$DEV_USER" >/dev/null; then
    getent group "$DEV_UID" >/dev/null && die "gid $DEV_UID is taken by another group"
    groupadd --gid "$DEV_UID" "$DEV_USER"
fi
if ! id "$DEV_USER" >/dev/null 2>&1; then
    getent passwd "$DEV_UID" >/dev/null && die "uid $DEV_UID is taken by another user"
    useradd --uid "$DEV_UID" --gid "$DEV_USER" --create-home --home-dir "$DEV_HOME" \
        --shell /bin/bash "$DEV_USER"
fi
[ "$(id -u "$DEV_USER")" = "$DEV_UID" ] || die "$DEV_USER exists with another uid"
if [ "$(getent passwd "$DEV_USER" | cut -d: -f6,7)" != "$DEV_HOME:/bin/bash" ]; then
    usermod --home "$DEV_HOME" --shell /bin/bash "$DEV_USER"
fi
# No password at all: the account is locked for password logins; SSH keys are
# the only way in (sshd_config uses PAM, which allows key logins to it).
usermod --lock "$DEV_USER"

# Passwordless sudo: YES. The VM is single-tenant: its one user owns the whole
# machine, and the isolation boundary is the Fly Machine (a Firecracker microVM),
# not this account. People and their agents need `sudo apt-get install` in a
# development environment, and with no password there is nothing they could
# type anyway. What root can reach beyond dev is this project's own: its
# machine token (in aetherd's environment) and its host keys.
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$DEV_USER" >/etc/sudoers.d/aether-dev
chmod 0440 /etc/sudoers.d/aether-dev
visudo -cq -f /etc/sudoers.d/aether-dev

# --- sshd ------------------------------------------------------------------------
log "configuring sshd"
install -m 0644 -o 0 -g 0 "$SRC_DIR/sshd_config" /etc/ssh/sshd_config
# Debian's sshd_config.d drop-ins are no longer Included (our file has no
# Include line); remove any to avoid confusion.
rm -f /etc/ssh/sshd_config.d/*.conf
# pam_loginuid fails where the audit login uid cannot be set (containers,
# chroots) and, as "required", would then close every session. Optional is
# harmless where it works.
sed -i -E 's/^(session[[:space:]]+)required([[:space:]]+pam_loginuid\.so)/\1optional\2/' /etc/pam.d/sshd
# The package generated host keys for THIS image: every machine would share
# them. Machines make their own on first boot (first-boot.sh).
rm -f /etc/ssh/ssh_host_*

# --- tmux ----------------------------------------------------------------------
install -m 0644 -o 0 -g 0 "$SRC_DIR/tmux.conf" /etc/tmux.conf

# --- the home skeleton -----------------------------------------------------------
log "preparing $DEV_HOME and its skeleton"
install -d -m 0755 -o "$DEV_USER" -g "$DEV_USER" "$DEV_HOME"
install -d -m 0700 -o "$DEV_USER" -g "$DEV_USER" "$DEV_HOME/.ssh"
install -d -m 0755 -o "$DEV_USER" -g "$DEV_USER" \
    "$DEV_HOME/.local" "$DEV_HOME/.local/bin" "$DEV_HOME/.config"
# `npm install -g` without sudo, into the volume: global CLIs (coding agents)
# survive restarts, whereas the machine's root file system is rebuilt from the
# image.
printf 'prefix=%s/.local\n' "$DEV_HOME" >"$DEV_HOME/.npmrc"
chown "$DEV_USER:$DEV_USER" "$DEV_HOME/.npmrc"
# ~/.profile adds ~/.local/bin for login shells; this covers the others.
if ! grep -q '# aether: PATH' "$DEV_HOME/.bashrc"; then
    cat >>"$DEV_HOME/.bashrc" <<'EOF'

# aether: PATH
case ":$PATH:" in
    *":$HOME/.local/bin:"*) ;;
    *) PATH="$HOME/.local/bin:$PATH" ;;
esac
EOF
fi

install -d -m 0755 "$AETHER_DIR"
rm -rf "$AETHER_DIR/home-skel"
cp -a "$DEV_HOME" "$AETHER_DIR/home-skel"
install -m 0755 -o 0 -g 0 "$SRC_DIR/first-boot.sh" "$AETHER_DIR/first-boot.sh"

# --- trim ------------------------------------------------------------------------
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt/* /root/.cache
log "done"
