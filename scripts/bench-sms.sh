#!/usr/bin/env bash
# Inbound SMS webhook throughput at 64 connections with signature checks on: signed Twilio
# messaging webhooks (distinct MessageSids, a few thousand customers, one org number) against a
# fresh SQLite store, then the rows they left.
# Usage: [SMSCTX_BINARY=build] bash scripts/bench-sms.sh [seconds, default 10] [customers, default 5000]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
customers=${2:-5000}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
# SMSCTX_BINARY=<a build> measures that binary instead (a before/after comparison).
if [ -z "${SMSCTX_BINARY:-}" ]; then cargo build --release --quiet; fi
dir=$(mktemp -d)
port=18182
url="http://127.0.0.1:$port/channels/sms/twilio"
token=bench-twilio-auth-token-0123456789
bin=${SMSCTX_BINARY:-./target/release/smsctx}
# `channel add` needs an existing store: one short start creates it.
$bin serve --listen 127.0.0.1:$port --database "sqlite://$dir/bench.db" --admin-token bench \
  >/dev/null 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.2; done
kill $pid; wait $pid 2>/dev/null || true
# The account scripts/bench/sign-twilio.py signs the messages as.
$bin channel add --database "sqlite://$dir/bench.db" --provider twilio --number +14252306549 \
  --account AC0123456789abcdef0123456789abcdef --secret "$token" --public-url "$url" >/dev/null
# Enough distinct messages for the run (about 5,000 per second at most on this machine).
python3 scripts/bench/sign-twilio.py "$url" "$token" +14252306549 $((duration * 6000)) "$customers" \
  > "$dir/requests.tsv"
$bin serve --listen 127.0.0.1:$port --database "sqlite://$dir/bench.db" --admin-token bench \
  >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

echo "== signed Twilio webhooks (POST /channels/sms/twilio), 64 connections, ${duration}s"
SMSCTX_BENCH_REQUESTS="$dir/requests.tsv" wrk -t2 -c64 -d"${duration}s" --latency \
  -s scripts/bench/twilio.lua "http://127.0.0.1:$port" \
  | grep -E "Requests/sec|Latency|50%|99%|requests in|Non-2xx|Socket errors"
api="http://127.0.0.1:$port/api/data/v9.2"
echo "contexts: $(curl -sf "$api/msdyn_smsengagementctxes/\$count" -H 'Authorization: Bearer bench')," \
  "conversations: $(curl -sf "$api/msdyn_ocliveworkitems/\$count" -H 'Authorization: Bearer bench')," \
  "transcript notes: $(curl -sf "$api/annotations/\$count" -H 'Authorization: Bearer bench' || echo none)"
