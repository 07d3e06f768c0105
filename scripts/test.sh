#!/usr/bin/env bash
# Every test: format and lint checks, Rust unit and integration tests against
# a throwaway Postgres, the web app's type check, unit tests and build, and
# the browser tests against a real hub with the local provider.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --bins --locked

cleanup=()
on_exit() { for c in "${cleanup[@]}"; do eval "$c" || true; done; }
trap on_exit EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  step "throwaway postgres"
  pgdir=$(mktemp -d /tmp/aether-pg.XXXXXX)
  DATABASE_URL=$(scripts/test-postgres.sh "$pgdir")
  export DATABASE_URL
  cleanup+=("scripts/test-postgres.sh stop $pgdir")
  echo "$DATABASE_URL"
fi

# Every hub the tests start runs its VMs isolated, or refuses to start.
export AETHER_ISOLATION=required

step "rust tests"
cargo nextest run --workspace --locked --no-fail-fast

step "web: type check, unit tests, build"
(cd web && npm ci --no-audit --no-fund && npm run typecheck && npm test && npm run build)

step "browser tests against a real hub"
data=$(mktemp -d /tmp/aether-e2e.XXXXXX)
chmod 755 "$data"
# A mail server that keeps what the hub sends, for the accounts steps.
node web/e2e/smtp-sink.mjs "$data/mail" "$data/smtp.port" >"$data/smtp.log" 2>&1 &
sink=$!
cleanup+=("kill $sink 2>/dev/null")
for _ in $(seq 1 100); do [ -s "$data/smtp.port" ] && break; sleep 0.1; done
[ -s "$data/smtp.port" ] || { cat "$data/smtp.log"; echo "the SMTP sink did not start" >&2; exit 1; }
# The fake Stripe (test code) the hub bills through; the browser pays on it.
cargo build -p aether-hub --example fake_stripe --locked
./target/debug/examples/fake_stripe "$data/stripe.json" >"$data/stripe.log" 2>&1 &
stripe=$!
cleanup+=("kill $stripe 2>/dev/null")
for _ in $(seq 1 100); do [ -s "$data/stripe.json" ] && break; sleep 0.1; done
[ -s "$data/stripe.json" ] || { cat "$data/stripe.log"; echo "the fake Stripe did not start" >&2; exit 1; }
stripe_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$data/stripe.json" "$1"; }
env -u DATABASE_URL AETHER_DATA_DIR="$data" AETHER_LISTEN=127.0.0.1:0 AETHER_TUNNEL_LISTEN=127.0.0.1:0 \
  AETHER_SMTP_URL="smtp://127.0.0.1:$(cat "$data/smtp.port")" \
  STRIPE_SECRET_KEY=sk_test_fake_stripe STRIPE_WEBHOOK_SECRET=whsec_fake_stripe_webhooks \
  STRIPE_PRICE_PRO=price_aether_pro STRIPE_PRICE_TEAM=price_aether_team STRIPE_API_BASE="$(stripe_field api)" \
  AETHER_SSH_LISTEN=127.0.0.1:0 AETHER_WEB_DIR=web/dist ./target/debug/aether-hub >"$data/hub.log" 2>&1 &
hub=$!
cleanup+=("kill $hub 2>/dev/null; wait $hub 2>/dev/null; pkill -f 'aetherd run' ; rm -rf $data")
for _ in $(seq 1 300); do [ -s "$data/hub.json" ] && break; sleep 0.2; done
[ -s "$data/hub.json" ] || { cat "$data/hub.log"; echo "hub did not start" >&2; exit 1; }
url="http://$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$data/hub.json")"
(cd web && AETHER_E2E_URL="$url" AETHER_E2E_DATA="$data" AETHER_E2E_MAIL="$data/mail" AETHER_E2E_STRIPE="$(stripe_field control)" npm run e2e) || { tail -50 "$data/hub.log"; grep -m3 -A3 panicked "$data/stripe.log"; exit 1; }
