#!/usr/bin/env bash
# Instructions per inbound SMS webhook, counted by callgrind (repeatable on a busy machine): the
# server's total over N2 signed Twilio webhooks minus its total over N1, divided by N2 - N1, so
# start-up cancels out (the pattern of scripts/bench-instructions.sh).
# Usage: bash scripts/bench-webhook-instructions.sh first|later [BINARY]
#   first  every counted message is a new customer's first: it opens a conversation, a context
#          and their transcript
#   later  2,000 customers have written once (an uncounted start); every counted message is a
#          later one of theirs, landing on its open context and transcript
# Messages go one after another on one keep-alive connection (scripts/bench/webhooks.py), so
# each is its own group commit. KEEP=dir keeps both runs' callgrind outputs there (cg.N.out).
# Needs valgrind, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
case_=${1:?first or later}
bin=${2:-./target/release/smsctx}
N1=${N1:-300} N2=${N2:-1300} port=${PORT:-18194} seed=2000
[ -n "${2:-}" ] || cargo build --release --quiet
url="http://127.0.0.1:$port/channels/sms/twilio"
token=bench-twilio-auth-token-0123456789
wait_up() { for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && return; sleep 0.2; done; exit 1; }
serve() { exec "$bin" serve --listen "127.0.0.1:$port" --database "sqlite://$1/b.db" --admin-token bench; }
count() { # messages -> total instructions
  local dir; dir=$(mktemp -d)
  serve "$dir" >/dev/null 2>&1 &
  local pid=$!; wait_up
  kill $pid; wait $pid 2>/dev/null || true
  "$bin" channel add --database "sqlite://$dir/b.db" --provider twilio --number +14252306549 \
    --account AC0123456789abcdef0123456789abcdef --secret "$token" --public-url "$url" >/dev/null
  local first=0
  if [ "$case_" = later ]; then
    python3 scripts/bench/sign-twilio.py "$url" "$token" +14252306549 $((seed + $1)) $seed > "$dir/r.tsv"
    serve "$dir" >/dev/null 2>&1 &
    pid=$!; wait_up
    python3 scripts/bench/webhooks.py "$port" "$dir/r.tsv" 0 $seed
    kill $pid; wait $pid 2>/dev/null || true
    first=$seed
  else
    python3 scripts/bench/sign-twilio.py "$url" "$token" +14252306549 "$1" 1000000 > "$dir/r.tsv"
  fi
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
    "$bin" serve --listen "127.0.0.1:$port" --database "sqlite://$dir/b.db" --admin-token bench \
    >/dev/null 2>"$dir/valgrind.log" &
  pid=$!; wait_up
  python3 scripts/bench/webhooks.py "$port" "$dir/r.tsv" "$first" "$1"
  kill $pid; wait $pid 2>/dev/null || true
  grep -h '^totals:\|^summary:' "$dir"/cg.out* | head -1 | awk '{print $2}'
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$dir/cg.out" "$KEEP/cg.$1.out"; fi
  rm -rf "$dir"
}
a=$(count "$N1"); b=$(count "$N2")
echo "webhook $case_: $(( (b - a) / (N2 - N1) )) instructions per message ($bin)"
