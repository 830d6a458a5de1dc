#!/usr/bin/env bash
# Instructions per request, counted by callgrind (repeatable on a busy machine): the server's
# total over N2 requests minus its total over N1, divided by N2 - N1, so start-up cancels out.
# Usage: bash scripts/bench-instructions.sh create|retrieve|update [binary] [SQL to run on the database
#        before the counted start, e.g. "DROP INDEX msdyn_smsengagementctx_customer;"]
# The database first gets 2,000 contexts (an uncounted start), then each counted start sends
# its requests on one keep-alive connection. Needs valgrind, sqlite3, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
case_=${1:?create, retrieve or update}
binary=${2:-./target/release/smsctx}
prepare=${3:-}
[ -n "${2:-}" ] || cargo build --release --quiet
case $case_ in create) client=scripts/bench/creates.py ;; retrieve) client=scripts/bench/retrieves.py ;;
  update) client=scripts/bench/updates.py ;;
  *) echo "unknown case $case_" >&2; exit 2 ;; esac
N1=${N1:-300} N2=${N2:-1300} port=${PORT:-18193}
wait_up() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return; sleep 0.2; done; exit 1; }
count() { # requests -> total instructions
  local dir; dir=$(mktemp -d)
  "$binary" serve --listen 127.0.0.1:$port --database "sqlite://$dir/b.db" --admin-token bench >/dev/null 2>&1 &
  local pid=$!; wait_up
  python3 scripts/bench/creates.py $port 2000 1000000
  kill $pid; wait $pid 2>/dev/null || true
  [ -z "$prepare" ] || sqlite3 "$dir/b.db" "$prepare"
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$binary" serve --listen 127.0.0.1:$port \
    --database "sqlite://$dir/b.db" --admin-token bench >/dev/null 2>"$dir/valgrind.log" &
  pid=$!; wait_up
  python3 "$client" $port "$1" 0
  kill -INT $pid; wait $pid 2>/dev/null || true
  grep -h '^totals:\|^summary:' "$dir"/cg.out* | head -1 | awk '{print $2}'
  rm -rf "$dir"
}
a=$(count "$N1"); b=$(count "$N2")
echo "$case_: $(( (b - a) / (N2 - N1) )) instructions per request ($binary${prepare:+, after: $prepare})"
