#!/usr/bin/env bash
# SQLite against PostgreSQL, one node and two nodes: durable creates, retrieve-by-key and the
# phone-pair filter at 64 connections (wrk; with two nodes, 32 connections to each and the
# request rates added up). PostgreSQL runs with fsync on (a throwaway server from
# scripts/lib/postgres.sh), like SQLite's synchronous=FULL.
# Usage: bash scripts/bench-backends.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
cargo build --release --quiet
source scripts/lib/postgres.sh
start_postgres on
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
    stop_postgres
}
trap cleanup EXIT
export SMSCTX_BENCH_TOKEN=bench SMSCTX_BENCH_IDS=$work/ids

# Starts one node on $1 listening on port $2.
node() {
    ./target/release/smsctx serve --listen "127.0.0.1:$2" --database "$1" \
        --admin-token "$SMSCTX_BENCH_TOKEN" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/health" >/dev/null && return; sleep 0.1; done
    echo "node on port $2 did not start" >&2
    exit 1
}

# Runs wrk script $1 for $duration against every port in $ports (64 connections in all) and
# prints the summed requests per second and the worst p99 latency.
load() {
    local script=$1 n=0 port loaders=()
    set -- $ports
    local per=$((64 / $#))
    for port in "$@"; do
        wrk -t1 -c"$per" -d"${duration}s" --latency -s "scripts/bench/$script" \
            "http://127.0.0.1:$port" >"$work/wrk.$n" &
        loaders+=($!)
        n=$((n + 1))
    done
    wait "${loaders[@]}"
    awk '/Requests\/sec/ {rps += $2} / 99%/ {print $2 > "/dev/stderr"} /Non-2xx/ {bad += $NF}
         END {printf "%8.0f req/s%s", rps, (bad ? " (" bad " non-2xx)" : "")}' "$work"/wrk.* 2>"$work/p99"
    echo "   p99 $(sort -h "$work/p99" | tail -1)"
    rm -f "$work"/wrk.* "$work/p99"
}

# Runs the three workloads on the nodes at $ports (all on one database).
workloads() {
    local first=${ports%% *}
    printf '  %-22s' "create (POST)"; load create.lua
    curl -sf "http://127.0.0.1:$first/api/data/v9.2/msdyn_smsengagementctxes?\$select=msdyn_smsengagementctxid" \
        -H "Authorization: Bearer $SMSCTX_BENCH_TOKEN" -H 'Prefer: odata.maxpagesize=5000' |
        grep -o '"msdyn_smsengagementctxid":"[^"]*"' | cut -d'"' -f4 >"$SMSCTX_BENCH_IDS"
    export SMSCTX_BENCH_ROWS
    SMSCTX_BENCH_ROWS=$(curl -sf "http://127.0.0.1:$first/api/data/v9.2/msdyn_smsengagementctxes/\$count" \
        -H "Authorization: Bearer $SMSCTX_BENCH_TOKEN")
    printf '  %-22s' "retrieve by key (GET)"; load retrieve.lua
    printf '  %-22s' "phone-pair filter"; load phones.lua
    echo "  (retrieve samples $(wc -l <"$SMSCTX_BENCH_IDS") ids; the filter looks up customer numbers 1..$SMSCTX_BENCH_ROWS)"
}

echo "== SQLite, one node"
node "sqlite://$work/bench.db" 18201
ports="18201"
workloads

psql_url() { echo "${SMSCTX_PG_URL%/postgres}/$1"; }
"$PGBIN/psql" -q "$SMSCTX_PG_URL" -c "CREATE DATABASE bench1" -c "CREATE DATABASE bench2"

echo "== PostgreSQL, one node"
node "$(psql_url bench1)" 18211
ports="18211"
workloads

echo "== PostgreSQL, two nodes on one database"
node "$(psql_url bench2)" 18221
node "$(psql_url bench2)" 18222
ports="18221 18222"
workloads
