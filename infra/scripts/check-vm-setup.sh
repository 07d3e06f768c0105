#!/usr/bin/env bash
# Single-quoted $... in this file is meant for the shells inside the chroot.
# shellcheck disable=SC2016
#
# Checks the VM image's userland without a Docker engine: debootstraps a
# Debian bookworm minbase root (what debian:bookworm-slim is made from), runs
# infra/vm/setup.sh in it with chroot (twice: it must be idempotent), then
# checks the result, simulates the Fly Volume at /home/dev with a tmpfs to run
# infra/vm/first-boot.sh (twice, and on a non-empty home), validates sshd's
# configuration and logs in over SSH for real (on loopback, another port).
# Everything it mounts is unmounted on exit, and every process it starts is
# stopped by its pid.
#
# Usage (as root, on a Linux host with debootstrap and network access to a
# Debian mirror):  infra/scripts/check-vm-setup.sh
# Environment:
#   VMROOT=/tmp/vmroot   where to build the root (removed first, and on exit)
#   KEEP_VMROOT=1        keep the root after the run (still unmounted)
#   MIRROR=URL           Debian mirror (default: the host's apt source, then
#                        http://deb.debian.org/debian)
#   BASE_CACHE=FILE      tarball of the bare debootstrapped root: made on the
#                        first run, reused (no debootstrap) on later runs
#   SSH_TEST_PORT=2299   loopback port for the live SSH test
# Exit status: 0 when every check passed.
set -euo pipefail
export LC_ALL=C

ROOT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
VM_SRC="$ROOT_DIR/infra/vm"
VMROOT=${VMROOT:-/tmp/vmroot}
SSH_TEST_PORT=${SSH_TEST_PORT:-2299}
SUITE=bookworm
LOG_DIR=$(mktemp -d /tmp/check-vm-setup.XXXXXX)
SSHD_PID=
START=$SECONDS

say() { printf '== %s\n' "$*"; }
die() { printf 'check-vm-setup: error: %s\n' "$*" >&2; exit 2; }

# --- safety and preflight -----------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mount need it)"
case $VMROOT in
    /*) ;;
    *) die "VMROOT must be an absolute path" ;;
esac
case $VMROOT in *[[:space:]]*) die "VMROOT must not contain spaces" ;; esac
VMROOT=${VMROOT%/}
if [ -z "$VMROOT" ] || [ "$(dirname "$VMROOT")" = / ]; then
    die "VMROOT must be at least two levels deep (got '$VMROOT')"
fi
for cmd in debootstrap chroot mount umount ss; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is missing (apt-get install -y debootstrap iproute2)"
done
for f in setup.sh first-boot.sh sshd_config tmux.conf; do
    [ -f "$VM_SRC/$f" ] || die "missing $VM_SRC/$f"
done

# Mount points at or under VMROOT, deepest first.
mounts_under() {
    awk -v r="$VMROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

unmount_all() {
    local m
    for m in $(mounts_under); do
        umount "$m" 2>/dev/null || umount -l "$m" || true
    done
}

remove_root() {
    unmount_all
    if [ -n "$(mounts_under)" ]; then
        printf 'check-vm-setup: still mounted under %s, NOT removing it:\n%s\n' "$VMROOT" "$(mounts_under)" >&2
        return 1
    fi
    rm -rf --one-file-system -- "$VMROOT"
}

# The script's own stdout/stderr, for cleanup: a signal can arrive while a
# step's output is redirected to a log file.
exec 3>&1 4>&2
cleanup() {
    local rc=$?
    exec 1>&3 2>&4
    if [ -n "$SSHD_PID" ] && kill -0 "$SSHD_PID" 2>/dev/null; then
        kill "$SSHD_PID" 2>/dev/null || true
        wait "$SSHD_PID" 2>/dev/null || true
    fi
    unmount_all
    if [ -n "$(mounts_under)" ]; then
        printf 'check-vm-setup: WARNING: still mounted:\n%s\n' "$(mounts_under)" >&2
        rc=3
    elif [ "${KEEP_VMROOT:-0}" = 1 ]; then
        printf 'check-vm-setup: kept %s (nothing mounted)\n' "$VMROOT"
    else
        rm -rf --one-file-system -- "$VMROOT"
    fi
    printf 'check-vm-setup: logs in %s; took %ss\n' "$LOG_DIR" "$((SECONDS - START))"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- results --------------------------------------------------------------------
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); printf 'ok   - %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL - %s\n' "$1"; [ -z "${2:-}" ] || printf '       %s\n' "$2"; }
# check "description" command...: passes when the command succeeds.
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$desc"; else fail "$desc" "$(printf '%s' "$out" | tail -n 5 | tr '\n' ' ')"; fi
}
# expect "description" "wanted regex" command...: output must match.
expect() {
    local desc=$1 want=$2 out
    shift 2
    out=$("$@" 2>&1 | tr -d '\r') || true
    if printf '%s\n' "$out" | grep -Eq -- "$want"; then ok "$desc"; else fail "$desc" "wanted /$want/, got: $(printf '%s' "$out" | tail -n 5 | tr '\n' ' ')"; fi
}

CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
in_root() { chroot "$VMROOT" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb "$@"; }
as_dev() { in_root runuser -u dev -- "$@"; }

# --- 1. a bookworm minbase root ---------------------------------------------------
say "preparing $VMROOT"
remove_root || die "could not clear $VMROOT"

mirrors=()
[ -z "${MIRROR:-}" ] || mirrors+=("$MIRROR")
while read -r uri; do
    mirrors+=("$uri")
done < <(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -E '^[[:space:]]*(deb|URIs:)[[:space:]]' | grep -Eo 'https?://[^ ]*/debian/?' |
    sed 's:/*$::' | awk '!seen[$0]++')
mirrors+=(http://deb.debian.org/debian)

if [ -n "${BASE_CACHE:-}" ] && [ -s "$BASE_CACHE" ]; then
    say "unpacking cached base $BASE_CACHE"
    mkdir -p "$VMROOT"
    tar -C "$VMROOT" -xzf "$BASE_CACHE"
else
    done_ok=false
    for m in "${mirrors[@]}"; do
        say "debootstrap --variant=minbase $SUITE from $m"
        t=$SECONDS
        if debootstrap --variant=minbase "$SUITE" "$VMROOT" "$m" >"$LOG_DIR/debootstrap.log" 2>&1; then
            say "debootstrap took $((SECONDS - t))s"
            done_ok=true
            break
        fi
        tail -n 5 "$LOG_DIR/debootstrap.log" >&2
        remove_root || die "could not clear $VMROOT"
    done
    $done_ok || die "debootstrap failed with every mirror (${mirrors[*]}); see $LOG_DIR/debootstrap.log"
    if [ -n "${BASE_CACHE:-}" ]; then
        mkdir -p "$(dirname "$BASE_CACHE")"
        tar -C "$VMROOT" -czf "$BASE_CACHE" .
    fi
fi

# What a container runtime gives a build: /proc, a private devpts, DNS.
mount -t proc proc "$VMROOT/proc"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$VMROOT/dev/pts"
[ -e "$VMROOT/dev/ptmx" ] || ln -s pts/ptmx "$VMROOT/dev/ptmx"
cp -L /etc/resolv.conf "$VMROOT/etc/resolv.conf"
# Keep package scripts from starting daemons, as in a Docker build.
printf '#!/bin/sh\nexit 101\n' >"$VMROOT/usr/sbin/policy-rc.d"
chmod 0755 "$VMROOT/usr/sbin/policy-rc.d"

rm -rf "$VMROOT/tmp/aether-vm"
cp -a "$VM_SRC" "$VMROOT/tmp/aether-vm"

# --- 2. setup.sh, twice ---------------------------------------------------------------
snapshot() {
    in_root bash -c '
        sha256sum /etc/ssh/sshd_config /etc/tmux.conf /etc/sudoers.d/aether-dev \
            /etc/default/locale /etc/locale.gen /opt/aether/first-boot.sh
        getent passwd dev; getent group dev; getent shadow dev | cut -d: -f1,2
        (cd /opt/aether/home-skel && find . -printf "%p %m %u:%g %s\n" | sort)
        ls /etc/ssh'
}

say "running setup.sh in the chroot"
t=$SECONDS
in_root bash /tmp/aether-vm/setup.sh >"$LOG_DIR/setup-1.log" 2>&1 ||
    { tail -n 30 "$LOG_DIR/setup-1.log" >&2; die "setup.sh failed; see $LOG_DIR/setup-1.log"; }
say "setup.sh took $((SECONDS - t))s"
snapshot >"$LOG_DIR/state-1.txt"

say "running setup.sh again (idempotency)"
t=$SECONDS
if in_root bash /tmp/aether-vm/setup.sh >"$LOG_DIR/setup-2.log" 2>&1; then
    ok "setup.sh runs a second time"
else
    fail "setup.sh runs a second time" "see $LOG_DIR/setup-2.log"
fi
say "second setup.sh took $((SECONDS - t))s"
snapshot >"$LOG_DIR/state-2.txt"
check "second setup.sh leaves config, user and skeleton unchanged" \
    diff -u "$LOG_DIR/state-1.txt" "$LOG_DIR/state-2.txt"

# --- 3. the image as built ----------------------------------------------------------
say "checking the image"
expect "user dev is uid/gid 1000" '^uid=1000\(dev\) gid=1000\(dev\)' in_root id dev
expect "dev's home is /home/dev and shell /bin/bash" '^dev:x:1000:1000:.*:/home/dev:/bin/bash$' in_root getent passwd dev
expect "dev's password is locked" '^dev L ' in_root passwd -S dev
check "dev has passwordless sudo" as_dev sudo -n true
check "sudoers file is valid" in_root visudo -c
check "tmux present" in_root tmux -V
check "git present" in_root git --version
check "python3 present" in_root python3 --version
check "pip present" in_root pip3 --version
check "python3 -m venv works" in_root python3 -m venv /tmp/venv-check
check "node present" in_root node --version
check "npm present" in_root npm --version
check "gcc and make present (build-essential)" in_root bash -c 'gcc --version && make --version'
check "curl present" in_root curl --version
check "less, vi, ps present" in_root bash -c 'less --version && vi --version && ps --version'
check "ssh, sshd and sftp-server present" in_root bash -c 'ssh -V && test -x /usr/sbin/sshd && test -x /usr/lib/openssh/sftp-server'
expect "locale en_US.UTF-8 generated" '^en_US\.utf8$' in_root locale -a
expect "LANG defaults to en_US.UTF-8" '^LANG=en_US\.UTF-8$' in_root cat /etc/default/locale
expect "ca-certificates installed" 'ca-certificates\.crt' in_root ls /etc/ssl/certs/ca-certificates.crt
check "tmux-256color terminfo exists" in_root infocmp tmux-256color
check "no SSH host keys in the image" in_root bash -c '! compgen -G "/etc/ssh/ssh_host_*"'
check "apt lists cleaned" in_root bash -c '! compgen -G "/var/lib/apt/lists/*_Packages"'
check "first-boot.sh installed, executable" in_root test -x /opt/aether/first-boot.sh
check "skeleton has .bashrc, .profile, .npmrc" in_root bash -c 'cd /opt/aether/home-skel && test -f .bashrc && test -f .profile && test -f .npmrc'
expect "skeleton's .ssh is 700 dev:dev" '^700 dev:dev$' in_root stat -c '%a %U:%G' /opt/aether/home-skel/.ssh
expect "sshd_config installed" '^ListenAddress 127\.0\.0\.1$' in_root cat /etc/ssh/sshd_config
expect "pam_loginuid is optional for sshd" '^session[[:space:]]+optional[[:space:]]+pam_loginuid\.so' in_root cat /etc/pam.d/sshd

# tmux with the system config: the settings must take.
in_root tmux -L aether-check -f /etc/tmux.conf new-session -d -s check 'sleep 60' >/dev/null 2>&1 || true
expect "tmux.conf: history-limit 100000" '^history-limit 100000$' in_root tmux -L aether-check show-options -g history-limit
expect "tmux.conf: mouse on" '^mouse on$' in_root tmux -L aether-check show-options -g mouse
expect "tmux.conf: default-terminal tmux-256color" 'tmux-256color' in_root tmux -L aether-check show-options -g default-terminal
in_root tmux -L aether-check kill-server >/dev/null 2>&1 || true

# --- 4. first boot on a new, empty volume -------------------------------------------------
say "first-boot.sh on an empty volume"
HOME_MNT="$VMROOT/home/dev"
# A new Fly Volume: an empty root-owned file system with lost+found, hiding
# the image's /home/dev.
mount -t tmpfs -o mode=0755,uid=0,gid=0,size=256m aether-volume "$HOME_MNT"
mkdir -m 0700 "$HOME_MNT/lost+found"

check "sshd -t fails before first boot (no host keys yet)" bash -c "! chroot '$VMROOT' /usr/sbin/sshd -t -f /etc/ssh/sshd_config"
check "first-boot.sh (1st run) succeeds" in_root /opt/aether/first-boot.sh
check "home seeded: .bashrc, .profile, .npmrc" in_root bash -c 'test -f /home/dev/.bashrc && test -f /home/dev/.profile && test -f /home/dev/.npmrc'
expect "home owned by dev, not group/world-writable" '^(755|750|700) dev:dev$' in_root stat -c '%a %U:%G' /home/dev
expect "seeded files owned by dev" '^dev:dev$' in_root stat -c '%U:%G' /home/dev/.bashrc
expect "home .ssh is 700 dev:dev" '^700 dev:dev$' in_root stat -c '%a %U:%G' /home/dev/.ssh
expect "ed25519 host key: 600 root" '^600 root:root$' in_root stat -c '%a %U:%G' /home/dev/.aether/hostkeys/ssh_host_ed25519_key
expect "rsa host key: 600 root" '^600 root:root$' in_root stat -c '%a %U:%G' /home/dev/.aether/hostkeys/ssh_host_rsa_key
expect "host key dir is root-only" '^700 root:root$' in_root stat -c '%a %U:%G' /home/dev/.aether/hostkeys
check "lost+found left alone" in_root test -d /home/dev/lost+found
check "/run/sshd created" in_root test -d /run/sshd
fp1=$(in_root bash -c 'for k in /home/dev/.aether/hostkeys/*_key; do ssh-keygen -lf "$k"; done' 2>&1)

# The user changes things; a reboot must keep them, and must repair .ssh.
as_dev bash -c 'echo "# my edit" >>/home/dev/.bashrc; echo hello >/home/dev/notes.txt; chmod 755 /home/dev/.ssh'
say "first-boot.sh again (a restart)"
check "first-boot.sh (2nd run) succeeds" in_root /opt/aether/first-boot.sh
check "user's .bashrc edit kept" in_root grep -qx '# my edit' /home/dev/.bashrc
check "user's file kept" in_root grep -qx hello /home/dev/notes.txt
expect "home .ssh mode repaired to 700" '^700$' in_root stat -c '%a' /home/dev/.ssh
fp2=$(in_root bash -c 'for k in /home/dev/.aether/hostkeys/*_key; do ssh-keygen -lf "$k"; done' 2>&1)
if [ -n "$fp1" ] && [ "$fp1" = "$fp2" ]; then ok "host keys unchanged by a restart"; else fail "host keys unchanged by a restart" "$fp1 / $fp2"; fi

# --- 5. sshd's configuration ---------------------------------------------------------------
say "sshd configuration"
check "sshd -t -f /etc/ssh/sshd_config" in_root /usr/sbin/sshd -t -f /etc/ssh/sshd_config
in_root /usr/sbin/sshd -T -f /etc/ssh/sshd_config >"$LOG_DIR/sshd-T.txt" 2>&1 || true
for want in \
    'listenaddress 127.0.0.1:22' 'listenaddress \[::1\]:22' \
    'passwordauthentication no' 'kbdinteractiveauthentication no' \
    'permitrootlogin no' 'pubkeyauthentication yes' 'permitemptypasswords no' \
    'allowusers dev' 'authorizedkeysfile \.ssh/authorized_keys' \
    'allowtcpforwarding yes' 'x11forwarding no' 'clientaliveinterval 30' \
    'hostkey /home/dev/\.aether/hostkeys/ssh_host_ed25519_key' \
    'subsystem sftp /usr/lib/openssh/sftp-server'; do
    expect "sshd -T: $want" "^$want\$" cat "$LOG_DIR/sshd-T.txt"
done
check "sshd -T: no listener on a wildcard address" bash -c "! grep -Eq '^listenaddress (0\.0\.0\.0|\[::\]):' '$LOG_DIR/sshd-T.txt'"

# --- 6. a real SSH login --------------------------------------------------------------------
say "live SSH test on 127.0.0.1:$SSH_TEST_PORT"
if ss -Hltn "( sport = :$SSH_TEST_PORT )" | grep -q .; then
    fail "live SSH test" "port $SSH_TEST_PORT is in use on this host; set SSH_TEST_PORT"
else
    in_root bash -c 'mkdir -p -m 700 /root/.ssh && rm -f /root/.ssh/check_key* /root/.ssh/known_hosts &&
        ssh-keygen -q -t ed25519 -N "" -f /root/.ssh/check_key'
    in_root bash -c 'cat /root/.ssh/check_key.pub >>/home/dev/.ssh/authorized_keys &&
        chown dev:dev /home/dev/.ssh/authorized_keys && chmod 600 /home/dev/.ssh/authorized_keys'
    # Same as aetherd will run it (-D -e), on a test port (-p overrides Port).
    chroot "$VMROOT" /usr/bin/env -i PATH="$CHROOT_PATH" /usr/sbin/sshd -D -e -p "$SSH_TEST_PORT" \
        >"$LOG_DIR/sshd.log" 2>&1 &
    SSHD_PID=$!
    for _ in $(seq 50); do
        ss -Hltn "( sport = :$SSH_TEST_PORT )" | grep -q . && break
        sleep 0.2
    done
    SSH=(ssh -p "$SSH_TEST_PORT" -i /root/.ssh/check_key -o BatchMode=yes -o ConnectTimeout=5
        -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/root/.ssh/known_hosts)

    listeners=$(ss -Hltn "( sport = :$SSH_TEST_PORT )" | awk '{print $4}' | sort | tr '\n' ' ')
    if [ "$listeners" = "127.0.0.1:$SSH_TEST_PORT [::1]:$SSH_TEST_PORT " ]; then
        ok "sshd listens on 127.0.0.1 and ::1 only"
    else
        fail "sshd listens on 127.0.0.1 and ::1 only" "listeners: $listeners"
    fi
    expect "key login as dev over IPv4 runs a command" '^dev$' in_root "${SSH[@]}" dev@127.0.0.1 'id -un'
    expect "key login as dev over IPv6" '^dev$' in_root "${SSH[@]}" 'dev@::1' 'id -un'
    expect "login gets LANG=en_US.UTF-8 and /home/dev" '^en_US\.UTF-8 /home/dev$' \
        in_root "${SSH[@]}" dev@127.0.0.1 'echo "$LANG $HOME"'
    expect "server offers publickey only" 'Authentications that can continue: publickey$' \
        in_root "${SSH[@]}" -v -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive dev@127.0.0.1 true
    check "password login refused" bash -c "! chroot '$VMROOT' /usr/bin/env -i PATH='$CHROOT_PATH' ${SSH[*]} -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive dev@127.0.0.1 true"
    in_root bash -c 'cat /root/.ssh/check_key.pub >>/root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys'
    check "root login refused even with a valid key" bash -c "! chroot '$VMROOT' /usr/bin/env -i PATH='$CHROOT_PATH' ${SSH[*]} root@127.0.0.1 true"
    expect "sftp subsystem works" 'Remote working directory: /home/dev' \
        in_root bash -c "echo pwd | sftp -b - -P $SSH_TEST_PORT -i /root/.ssh/check_key -o BatchMode=yes -o UserKnownHostsFile=/root/.ssh/known_hosts dev@127.0.0.1"
    expect "local port forwarding allowed" 'SSH-2\.0-OpenSSH' \
        in_root bash -c "timeout 10 ${SSH[*]} -W 127.0.0.1:$SSH_TEST_PORT dev@127.0.0.1 </dev/null | head -c 64"
    # The key the client learnt (accept-new) must be the volume's ed25519 key.
    learnt=$(in_root awk '{print $2, $3}' /root/.ssh/known_hosts 2>/dev/null || true)
    own=$(in_root awk '{print $1, $2}' /home/dev/.aether/hostkeys/ssh_host_ed25519_key.pub)
    if [ -n "$own" ] && printf '%s\n' "$learnt" | grep -qxF -- "$own"; then
        ok "sshd serves the volume's host key"
    else
        fail "sshd serves the volume's host key" "learnt: $learnt"
    fi
    kill "$SSHD_PID" 2>/dev/null || true
    wait "$SSHD_PID" 2>/dev/null || true
    SSHD_PID=
    in_root rm -f /root/.ssh/authorized_keys
fi

# --- 7. first boot must not seed a home that has content -------------------------------------
say "first-boot.sh on a volume that already has a project"
umount "$HOME_MNT"
mount -t tmpfs -o mode=0755,uid=1000,gid=1000,size=64m aether-volume "$HOME_MNT"
mkdir -p "$HOME_MNT/project"
echo 'keep me' >"$HOME_MNT/project/README"
check "first-boot.sh on a non-empty home succeeds" in_root /opt/aether/first-boot.sh
check "non-empty home is not seeded (no .bashrc added)" in_root test ! -e /home/dev/.bashrc
check "existing files untouched" in_root grep -qx 'keep me' /home/dev/project/README
check "host keys still created on an old volume" in_root test -s /home/dev/.aether/hostkeys/ssh_host_ed25519_key
umount "$HOME_MNT"

# --- result ----------------------------------------------------------------------------------------
echo
echo "check-vm-setup: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
