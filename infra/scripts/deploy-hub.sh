#!/usr/bin/env bash
# Deploys the aether hub to Fly.io with flyctl:
#   fly deploy . --config infra/hub/fly.toml --dockerfile infra/hub/Dockerfile
# run from the repository root, which is the build context. Extra arguments go
# to `fly deploy` (e.g. --remote-only, --app NAME, --strategy rolling).
#
# Usage: infra/scripts/deploy-hub.sh [fly deploy flags...]
#
# One-time setup (by hand; this script does not create or pay for anything):
#   fly auth login
#   fly apps create <hub-app>                # and set `app` in infra/hub/fly.toml
#   fly ips allocate-v4 -a <hub-app>         # DEDICATED IPv4: needed for UDP/QUIC
#   fly ips allocate-v6 -a <hub-app>
#   fly apps create <vm-app>                 # project VMs live in their own app
#   infra/scripts/build-vm-image.sh          # push the VM image to <vm-app>
#
# Secrets (never in fly.toml, never in the image); set them once, and again
# when they change (`fly secrets set` restarts the machines):
#   fly secrets set -a <hub-app> \
#     DATABASE_URL='postgres://USER:PASSWORD@HOST:5432/aether?sslmode=require' \
#     FLY_API_TOKEN="$(fly tokens create deploy -a <vm-app>)" \
#     SUPABASE_JWT_SECRET='...' SUPABASE_URL='https://<ref>.supabase.co' \
#     STRIPE_SECRET_KEY='sk_live_...' STRIPE_WEBHOOK_SECRET='whsec_...' \
#     STRIPE_PRICE_PRO='price_...' STRIPE_PRICE_TEAM='price_...' \
#     SENTRY_DSN='https://...' \
#     AETHER_JWT_SECRET="$(openssl rand -hex 32)" \
#     AETHER_SECRETS_KEY="$(openssl rand -hex 32)"
#   AETHER_SECRETS_KEY seals project env vars in Postgres: set it once and
#   never change it (the hub refuses to start with a key that can't open what
#   is stored). Without the two AETHER_* secrets the hub would generate them in
#   its ephemeral file system at every deploy.
#   Without the STRIPE_* secrets the hub runs with billing off.
#   The QUIC tunnel's TLS certificate must be stable across deploys (aetherd
#   verifies it against the system roots): keep it in secrets, not in the
#   machine's ephemeral file system. The SSH jump host's key, which agents pin,
#   is kept in Postgres sealed with AETHER_SECRETS_KEY.
#   List what is set: fly secrets list -a <hub-app>
set -euo pipefail

die() { printf 'deploy-hub: error: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

FLY=
for candidate in flyctl fly; do
    if command -v "$candidate" >/dev/null 2>&1; then FLY=$candidate; break; fi
done
[ -n "$FLY" ] || die "flyctl is not installed (neither 'flyctl' nor 'fly' is on PATH).
Install it (https://fly.io/docs/flyctl/install/) and run 'fly auth login', then run this again."

CONFIG=infra/hub/fly.toml
DOCKERFILE=infra/hub/Dockerfile
[ -f "$CONFIG" ] || die "missing $CONFIG"
[ -f "$DOCKERFILE" ] || die "missing $DOCKERFILE"
if [ ! -f web/package.json ] || [ ! -f web/package-lock.json ]; then
    die "web/package.json and web/package-lock.json are needed: the hub image builds the web app with 'npm ci'"
fi
[ -f .dockerignore ] ||
    die "no .dockerignore at the repository root: copy infra/.dockerignore there (else target/ and node_modules/ are sent to the builder)"

# The app: --app/-a among the arguments, else FLY_APP, else fly.toml's.
app_args=(--config "$CONFIG")
prev=
for arg in "$@"; do
    case $arg in
        --app=*) app_args=(--app "${arg#--app=}") ;;
        *) if [ "$prev" = -a ] || [ "$prev" = --app ]; then app_args=(--app "$arg"); fi ;;
    esac
    prev=$arg
done
if [ "${app_args[0]}" = --config ] && [ -z "${FLY_APP:-}" ] && grep -q 'CHANGEME' "$CONFIG"; then
    die "set 'app' in $CONFIG (it is a placeholder), or pass --app NAME"
fi

# UDP only reaches an app through a dedicated IPv4 address. Warn, don't fail:
# the listing's format is flyctl's, not ours.
if ips=$("$FLY" ips list "${app_args[@]}" 2>/dev/null); then
    if ! printf '%s\n' "$ips" | grep -Eq '(^|[[:space:]])v4([[:space:]]|$)'; then
        printf 'deploy-hub: warning: no dedicated IPv4 found; aetherd cannot reach the QUIC tunnel (UDP 4433) without one:\n  %s ips allocate-v4 %s\n' "$FLY" "${app_args[*]}" >&2
    fi
fi

set -x
exec "$FLY" deploy . --config "$CONFIG" --dockerfile "$DOCKERFILE" "$@"
