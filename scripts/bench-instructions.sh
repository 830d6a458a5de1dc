#!/usr/bin/env bash
# Instructions per request, counted by callgrind (repeatable on a busy machine): the server's
# total over N2 requests minus its total over N1, divided by N2 - N1, so start-up cancels out.
# Usage: bash scripts/bench-instructions.sh create|retrieve|filter|update [PEER] [SQL]
#   PEER  a smsctx binary (default ./target/release/smsctx, built first), or `limit`: the bare
#         axum + rusqlite server of ../shared/perf/limit, built in a copy of the harness
#         (LIMIT_DIR, default /tmp/perf/limit) on the same number of rows
#   SQL   run on smsctx's database before the counted start, e.g.
#         "DROP INDEX msdyn_smsengagementctx_customer;"
# The database first gets 2,000 contexts (an uncounted start for smsctx, ../shared/perf/seed.sh
# for the limit), then each counted start sends its requests on one keep-alive connection
# (scripts/bench/requests.py). Needs valgrind, sqlite3, python3, curl.
# WARM=W (smsctx only) counts in one process instead: W requests, then callgrind's counters are
# zeroed (callgrind_control -z), then N2 - N1 requests are counted and dumped. Start-up (whose
# cost moves by a few million instructions from run to run) is then outside the count, and
# repeated runs agree within about 1,000 instructions per request.
set -euo pipefail
cd "$(dirname "$0")/.."
case_=${1:?create, retrieve, filter or update}
peer=${2:-./target/release/smsctx}
prepare=${3:-}
N1=${N1:-300} N2=${N2:-1300} port=${PORT:-18193} rows=2000
limit_dir=${LIMIT_DIR:-/tmp/perf/limit}
if [ "$peer" = limit ]; then
  if [ ! -x "$limit_dir/target/release/limit" ]; then
    mkdir -p "$(dirname "$limit_dir")"
    cp -r ../shared/perf/. "$(dirname "$limit_dir")"
    (cd "$limit_dir" && cargo build --release --quiet)
  fi
elif [ -z "${2:-}" ]; then
  cargo build --release --quiet
fi
wait_up() { for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/$1" && return; sleep 0.2; done; exit 1; }
count() { # requests -> total instructions
  local dir; dir=$(mktemp -d)
  local -a server
  if [ "$peer" = limit ]; then
    sqlite3 "$dir/b.db" < "$limit_dir/schema.sql"
    bash "$limit_dir/../seed.sh" "$dir/b.db" msdyn_smsengagementctx "$rows" >/dev/null
    server=("$limit_dir/target/release/limit" "$port" "$dir/b.db")
  else
    server=("$peer" serve --listen "127.0.0.1:$port" --database "sqlite://$dir/b.db" --admin-token bench)
    "${server[@]}" >/dev/null 2>&1 &
    local pid=$!; wait_up health
    python3 scripts/bench/requests.py smsctx seed "$port" "$rows" 1000000
    kill $pid; wait $pid 2>/dev/null || true
    [ -z "$prepare" ] || sqlite3 "$dir/b.db" "$prepare"
  fi
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "${server[@]}" >/dev/null 2>"$dir/valgrind.log" &
  pid=$!; wait_up "$([ "$peer" = limit ] && echo hello || echo health)"
  python3 scripts/bench/requests.py "$([ "$peer" = limit ] && echo limit || echo smsctx)" "$case_" "$port" "$1" 0
  # smsctx shuts down on SIGINT; the limit has no handler and is ended by SIGTERM (valgrind
  # still writes the counts of a process a signal ends).
  kill -"$([ "$peer" = limit ] && echo TERM || echo INT)" $pid; wait $pid 2>/dev/null || true
  grep -h '^totals:\|^summary:' "$dir"/cg.out* | head -1 | awk '{print $2}'
  rm -rf "$dir"
}
if [ -n "${WARM:-}" ] && [ "$peer" != limit ]; then
  count_warm() { # -> instructions of N2 - N1 requests after WARM
    local dir; dir=$(mktemp -d)
    local -a server=("$peer" serve --listen "127.0.0.1:$port" --database "sqlite://$dir/b.db" --admin-token bench)
    "${server[@]}" >/dev/null 2>&1 &
    local pid=$!; wait_up health
    python3 scripts/bench/requests.py smsctx seed "$port" "$rows" 1000000
    kill $pid; wait $pid 2>/dev/null || true
    [ -z "$prepare" ] || sqlite3 "$dir/b.db" "$prepare"
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "${server[@]}" >/dev/null 2>"$dir/valgrind.log" &
    pid=$!; wait_up health
    python3 scripts/bench/requests.py smsctx "$case_" "$port" "$WARM" 0
    callgrind_control -z $pid >/dev/null 2>&1
    python3 scripts/bench/requests.py smsctx "$case_" "$port" "$(( N2 - N1 ))" "$WARM"
    callgrind_control -d $pid >/dev/null 2>&1
    kill -INT $pid; wait $pid 2>/dev/null || true
    grep -h '^totals:\|^summary:' "$dir"/cg.out.*1 | head -1 | awk '{print $2}'
    rm -rf "$dir"
  }
  t=$(count_warm)
  echo "$case_: $(( t / (N2 - N1) )) instructions per request after $WARM ($peer${prepare:+, after: $prepare})"
  exit 0
fi
a=$(count "$N1"); b=$(count "$N2")
echo "$case_: $(( (b - a) / (N2 - N1) )) instructions per request ($peer${prepare:+, after: $prepare})"
