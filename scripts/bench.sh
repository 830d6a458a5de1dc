#!/usr/bin/env bash
# Throughput of durable creates and of retrieve-by-key at 64 connections (wrk), and idle RSS.
# Usage: bash scripts/bench.sh [seconds per run, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
# SMSCTX_BINARY=path runs another build (to compare two builds back to back).
binary=${SMSCTX_BINARY:-./target/release/smsctx}
[ -n "${SMSCTX_BINARY:-}" ] || cargo build --release --quiet
dir=$(mktemp -d)
port=18181
export SMSCTX_BENCH_TOKEN=bench SMSCTX_BENCH_IDS=$dir/ids
"$binary" serve --listen 127.0.0.1:$port --database "sqlite://$dir/bench.db" \
  --admin-token "$SMSCTX_BENCH_TOKEN" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
echo "idle RSS after start: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"

echo "== create (POST, durable), 64 connections, ${duration}s"
wrk -t2 -c64 -d"${duration}s" --latency -s scripts/bench/create.lua "http://127.0.0.1:$port" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx|Socket errors"

curl -sf "http://127.0.0.1:$port/api/data/v9.2/msdyn_smsengagementctxes?\$select=msdyn_smsengagementctxid" \
  -H "Authorization: Bearer $SMSCTX_BENCH_TOKEN" -H 'Prefer: odata.maxpagesize=5000' \
  | python3 -c 'import json,sys; [print(r["msdyn_smsengagementctxid"]) for r in json.load(sys.stdin)["value"]]' > "$dir/ids"
echo "rows: $(curl -sf "http://127.0.0.1:$port/api/data/v9.2/msdyn_smsengagementctxes/\$count" -H "Authorization: Bearer $SMSCTX_BENCH_TOKEN"); sampling $(wc -l < "$dir/ids") ids"

echo "== retrieve by key (GET, full record JSON), 64 connections, ${duration}s"
wrk -t2 -c64 -d"${duration}s" --latency -s scripts/bench/retrieve.lua "http://127.0.0.1:$port" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx|Socket errors"

sleep 2
echo "idle RSS after the runs: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
