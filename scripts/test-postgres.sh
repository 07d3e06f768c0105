#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster (the machine's own binaries) for the
# test suite and prints its URL. Stop it with: scripts/test-postgres.sh stop DIR
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
run=()
if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); fi
if [ "${1:-}" = stop ]; then
  "${run[@]}" "$bin/pg_ctl" -D "$2/data" -m fast -w stop >/dev/null
  rm -rf "$2"
  exit 0
fi
dir=$1
mkdir -p "$dir"
chmod 755 "$dir"
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${run[@]}" "$bin/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 >"$dir/initdb.log" 2>&1
"${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off" \
  start >/dev/null
echo "postgres://postgres@127.0.0.1:$port/postgres"
