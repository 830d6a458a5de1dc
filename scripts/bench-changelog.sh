#!/usr/bin/env bash
# Durable creates or updates at 64 connections (wrk) with the change log on (change tracking and
# auditing, the defaults) and off (both switched off by the administrator through the Web API),
# back to back on fresh SQLite stores, alternating, so machine load falls on both alike (issue
# 15). Updates are PATCHes of the name of random rows among 2,000 seeded ones.
# Usage: bash scripts/bench-changelog.sh [seconds per run, default 15] [rounds, default 2]
#        [create|update, default create]
# SMSCTX_BINARY=path runs another build (default ./target/release/smsctx, built first).
# BACKEND=postgres runs each round on a fresh database of a throwaway PostgreSQL server (fsync
# on, scripts/lib/postgres.sh) instead of a fresh SQLite file; the writer-thread figure is then
# the SQLite writer's only and reads 0.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${BACKEND:-sqlite}
if [ "$backend" = postgres ]; then
  source scripts/lib/postgres.sh
  start_postgres on
fi
databases=0
fresh_database() { # DIR -> a database URL no round has used
  if [ "$backend" = postgres ]; then
    databases=$((databases + 1))
    "$PGBIN/psql" -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE DATABASE bench$databases" postgres
    echo "postgres://postgres@127.0.0.1:$PGPORT/bench$databases"
  else
    echo "sqlite://$1/bench.db"
  fi
}
duration=${1:-15}
rounds=${2:-2}
case_=${3:-create}
binary=${SMSCTX_BINARY:-./target/release/smsctx}
[ -n "${SMSCTX_BINARY:-}" ] || cargo build --release --quiet
port=${PORT:-18341}
export SMSCTX_BENCH_TOKEN=bench
B="http://127.0.0.1:$port/api/data/v9.2"
writer_ticks() { # PID -> CPU clock ticks of its SQLite writer thread
  for stat in /proc/"$1"/task/*/stat; do
    if grep -q '(smsctx-sqlite-w' "$stat"; then
      sed 's/.*) //' "$stat" | awk '{print $12 + $13}'
      return
    fi
  done
  echo 0
}
run() { # on|off
  local dir; dir=$(mktemp -d)
  local database; database=$(fresh_database "$dir")
  "$binary" serve --listen 127.0.0.1:$port --database "$database" \
    --admin-token "$SMSCTX_BENCH_TOKEN" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  if [ "$1" = off ]; then
    curl -sf -X PUT "$B/EntityDefinitions(LogicalName='msdyn_smsengagementctx')" \
      -H "Authorization: Bearer $SMSCTX_BENCH_TOKEN" -H 'Content-Type: application/json' \
      -d '{"ChangeTrackingEnabled":false,"IsAuditEnabled":{"Value":false}}'
  fi
  if [ "$case_" = update ]; then
    python3 scripts/bench/requests.py smsctx seed "$port" 2000 0
    curl -sf "$B/msdyn_smsengagementctxes?\$select=msdyn_smsengagementctxid" \
      -H "Authorization: Bearer $SMSCTX_BENCH_TOKEN" -H 'Prefer: odata.maxpagesize=5000' \
      | python3 -c 'import json,sys; [print(r["msdyn_smsengagementctxid"]) for r in json.load(sys.stdin)["value"]]' \
      > "$dir/ids"
    export SMSCTX_BENCH_IDS="$dir/ids"
  fi
  echo "== $case_, $backend, change log $1, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
  local written ticks out requests
  written=$(awk '/^wchar/ {print $2}' /proc/$pid/io)
  ticks=$(writer_ticks $pid)
  out=$(wrk -t2 -c64 -d"${duration}s" --latency -s "scripts/bench/$case_.lua" "http://127.0.0.1:$port")
  echo "$out" | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  # What each write cost the store's serial part: bytes written (the WAL and its checkpoints)
  # and the writer thread's CPU time, per 1,000 requests.
  echo "    per 1,000 requests: $(( ($(awk '/^wchar/ {print $2}' /proc/$pid/io) - written) / requests )) KB written," \
    "writer thread $(( ($(writer_ticks $pid) - ticks) * 1000000 / $(getconf CLK_TCK) / requests )) ms CPU"
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$dir"
}
for _ in $(seq "$rounds"); do run on; run off; done
