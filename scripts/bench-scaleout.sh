#!/usr/bin/env bash
# PostgreSQL (fsync on), one smsctx node against two behind HAProxy, and the CPU each request
# costs (issue 16). Seeds the side-by-side harness's 100,000 contexts (../shared/perf's shape:
# row i has id 00000000-0000-4000-8000-<i, 12 digits> and customer number 1555<i, 7 digits>),
# then runs its three cases (retrieve by key, $filter on the customer number, create) with
# wrk 2 threads x 64 connections, 5 s warm-up then 10 s measured, against
#   (a) one node directly, (b) one node behind HAProxy, (c) two nodes behind HAProxy
# (round robin, HTTP mode, keep-alive, health check GET /health). Every node is stateless on the
# one database. For each run it reads utime+stime from /proc before and after the measured
# 10 s: of the smsctx node(s), of PostgreSQL (the postmaster, its live children, and the
# children it reaped, via cutime+cstime) and of HAProxy, and prints CPU seconds per 1,000
# requests, which hold on a shared machine where requests/s do not. At the end, a capacity
# table derived from those costs (see BENCHMARKS.md).
#
# Usage: bash scripts/bench-scaleout.sh [statements]
#   statements: instead of the runs, count the SQL statements one request of each case runs
#   (pg_stat_statements; wrk 1 thread x 4 connections for DUR seconds on one node, NROWS
#   default 1,000): where PostgreSQL's share of each request goes.
# Env: DUR=10 WARM=5 IDLE=10 (seconds) CONNS=64 THREADS=2 NROWS=100000 SMSCTX_BINARY=target/release/smsctx
#      MIX="50 30 20" (percent retrieve, filter, create for the capacity table) HEADROOM=2
#      (provisioned cores = measured CPU x HEADROOM) CORES_PER_NODE=4
#      SUMMARY=FILE (appends machine-readable "run CONFIG CASE RPS P50 P99 REQS NON2XX
#      SOCKERR SMSCTX_CPU_S PG_CPU_S HAPROXY_CPU_S WRK_CPU_S" lines)
# Needs: cargo (unless SMSCTX_BINARY is given), python3, curl, wrk and haproxy (installed from
# Debian's packages when missing), PostgreSQL (scripts/lib/postgres.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10}
WARM=${WARM:-5}
IDLE=${IDLE:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
NROWS_SET=${NROWS:-}
NROWS=${NROWS:-100000}
MIX=${MIX:-50 30 20}
HEADROOM=${HEADROOM:-2}
CORES_PER_NODE=${CORES_PER_NODE:-4}
SUMMARY=${SUMMARY:-}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v haproxy >/dev/null || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -z "${SMSCTX_BINARY:-}" ]; then
    cargo build --release --quiet
    SMSCTX_BINARY=target/release/smsctx
fi
[ -x "$SMSCTX_BINARY" ] || { echo "no smsctx binary at $SMSCTX_BINARY" >&2; exit 1; }

# One measurement at a time on this machine, shared with ../shared/perf/measure.sh's lock.
exec 9>"${TMPDIR:-/tmp}/peers-measure.lock"
flock -n 9 || { echo "waiting for another measurement to finish" >&2; flock 9; }

statements=""
if [ "${1:-}" = statements ]; then
    statements=yes
    NROWS=${NROWS_SET:-1000}
fi

source scripts/lib/postgres.sh
start_postgres on
if [ -n "$statements" ]; then
    "$PGBIN/psql" -q "$SMSCTX_PG_URL" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
    "${PG_RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -w restart >/dev/null
fi
work=$(mktemp -d)
pids=()
haproxy_pid=""
cleanup() {
    local pid
    [ -z "$haproxy_pid" ] || kill "$haproxy_pid" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}" $haproxy_pid; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
    stop_postgres
}
trap cleanup EXIT
export SMSCTX_BENCH_TOKEN=bench NROWS
"$PGBIN/psql" -q "$SMSCTX_PG_URL" -c "CREATE DATABASE scale"
database="${SMSCTX_PG_URL%/postgres}/scale"
postmaster=$(head -1 "$PGTMP/data/postmaster.pid")
# Ports nothing listens on (other benchmarks on this machine use fixed ones): the seeding node,
# the two nodes, HAProxy and its stats page.
read -r seed_port port1 port2 lb_port stats_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
tck=$(getconf CLK_TCK)

# Starts a node listening on port $1 (any further arguments go to `serve`); its pid is the last
# of $pids.
node() {
    local port=$1
    shift
    "$SMSCTX_BINARY" serve --listen "127.0.0.1:$port" --database "$database" \
        --admin-token "$SMSCTX_BENCH_TOKEN" "$@" >"$work/node.$port.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do
        kill -0 "${pids[-1]}" 2>/dev/null || break
        curl -sf "http://127.0.0.1:$port/health" >/dev/null && return
        sleep 0.1
    done
    echo "node on port $port did not start:" >&2
    tail -20 "$work/node.$port.log" >&2
    exit 1
}

# Reads HAProxy's stats CSV on stdin: column $1 of each server of backend "nodes" (with its name
# first when $2 is "name").
stat_column() {
    awk -F, -v want="$1" -v named="${2:-}" '
        NR == 1 {for (i = 1; i <= NF; i++) if ($i == want || $i == "# " want) c = i}
        $1 == "nodes" && $2 != "BACKEND" {print (named ? $2 " " : "") $c}'
}

# Requests each HAProxy server answered with a 2xx so far (proof of the round robin).
spread() {
    curl -sf "http://127.0.0.1:$stats_port/stats;csv" |
        awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "hrsp_2xx") c = i}
                 $1 == "nodes" && $2 != "BACKEND" {printf "%s%s %s", sep, $2, $c; sep = ", "}
                 END {print ""}'
}

# Starts HAProxy on $lb_port (stats on $stats_port) in front of the nodes on the ports given.
balancer() {
    local port n=0
    [ -z "$haproxy_pid" ] || { kill "$haproxy_pid"; wait "$haproxy_pid" 2>/dev/null || true; }
    {
        cat <<EOF
global
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend api
    bind 127.0.0.1:$lb_port
    default_backend nodes
frontend stats
    bind 127.0.0.1:$stats_port
    stats enable
    stats uri /stats
backend nodes
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
EOF
        for port in "$@"; do
            n=$((n + 1))
            echo "    server node$n 127.0.0.1:$port check inter 2s"
        done
    } >"$work/haproxy.cfg"
    haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
    haproxy_pid=$!
    # Up when the stats page reports every server UP (the health check passed).
    for _ in $(seq 100); do
        kill -0 "$haproxy_pid" 2>/dev/null || break
        if [ "$(curl -sf "http://127.0.0.1:$stats_port/stats;csv" | stat_column status |
            grep -c '^UP$')" -eq $# ]; then
            return
        fi
        sleep 0.1
    done
    echo "haproxy did not report its $# servers up:" >&2
    cat "$work/haproxy.log" >&2
    exit 1
}

# utime+stime (clock ticks) of the processes given; with --reaped also cutime+cstime (the
# children they waited for). A process that is gone counts 0.
ticks() {
    local reaped=0 pid total=0 t
    if [ "${1:-}" = --reaped ]; then reaped=1; shift; fi
    for pid in "$@"; do
        t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null |
            awk -v r=$reaped '{print $12 + $13 + r * ($14 + $15)}') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
pg_ticks() {
    # shellcheck disable=SC2046
    echo $(($(ticks --reaped "$postmaster") + $(ticks $(pgrep -P "$postmaster"))))
}
# Busy, steal and all jiffies of the whole machine (for the load note).
machine() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat; }

# CPU seconds (user + system) the shell's children used between two `times` outputs ($1 after,
# $2 before): its second line, "XmY.YYYs XmY.YYYs".
children_seconds() {
    awk 'FNR == 2 {for (i = 1; i <= 2; i++) {split($i, p, "m"); t += (FILENAME == ARGV[1] ? 1 : -1) * (p[1] * 60 + p[2])}}
         END {printf "%.2f", t}' "$1" "$2"
}
seconds() { awk -v a="$1" -v b="$2" -v t="$tck" 'BEGIN {printf "%.2f", (b - a) / t}'; }
per1000() { awk -v s="$1" -v r="$2" 'BEGIN {printf "%.3f", (r > 0 ? s / r * 1000 : 0)}'; }

rows=()
# Runs case $2 (get|filter|post, labelled $3) of configuration $1 against port $4: warm-up,
# then the measured run with CPU read around it.
run() {
    local config=$1 mode=$2 label=$3 port=$4 smsctx0 pg0 lb0 m0 smsctx1 pg1 lb1 m1
    MODE=$mode wrk -t"$THREADS" -c"$CONNS" -d"${WARM}s" --timeout 5s -s scripts/bench/harness.lua \
        "http://127.0.0.1:$port" >/dev/null
    smsctx0=$(ticks "${serving[@]}")
    pg0=$(pg_ticks)
    lb0=$(ticks $haproxy_pid)
    m0=$(machine)
    # wrk runs in this shell (no subshell), so `times` counts its CPU among the children's.
    times >"$work/times0"
    MODE=$mode wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --timeout 5s \
        -s scripts/bench/harness.lua "http://127.0.0.1:$port" >"$work/wrk.out"
    times >"$work/times1"
    smsctx1=$(ticks "${serving[@]}")
    pg1=$(pg_ticks)
    lb1=$(ticks $haproxy_pid)
    m1=$(machine)
    local rps p50 p99 reqs non2xx sockerr
    read -r rps p50 p99 reqs non2xx sockerr < <(grep '^RESULT' "$work/wrk.out" |
        sed -E 's/[a-z0-9_]+=//g; s/^RESULT //')
    local s_cpu pg_cpu lb_cpu wrk_cpu busy steal
    s_cpu=$(seconds "$smsctx0" "$smsctx1")
    pg_cpu=$(seconds "$pg0" "$pg1")
    lb_cpu=$(seconds "$lb0" "$lb1")
    wrk_cpu=$(children_seconds "$work/times1" "$work/times0")
    read -r busy steal < <(awk -v a="$m0" -v b="$m1" 'BEGIN {
        split(a, x, " "); split(b, y, " "); all = y[3] - x[3]
        printf "%.0f %.0f\n", (y[1] - x[1]) / all * 100, (y[2] - x[2]) / all * 100 }')
    rows+=("$config|$label|$rps|$p50|$p99|$reqs|$non2xx|$sockerr|$s_cpu|$pg_cpu|$lb_cpu|$busy|$steal|$wrk_cpu")
    [ -z "$SUMMARY" ] ||
        echo "run ${config// /_} $mode $rps $p50 $p99 $reqs $non2xx $sockerr $s_cpu $pg_cpu $lb_cpu $wrk_cpu" >>"$SUMMARY"
    printf '  %-16s %7s req/s  p50 %6s ms  p99 %7s ms  non-2xx %s  socket errors %s  CPU s: smsctx %s, PostgreSQL %s, HAProxy %s, wrk %s (machine %s%% busy, %s%% stolen; load %s)\n' \
        "$label" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$s_cpu" "$pg_cpu" "$lb_cpu" "$wrk_cpu" "$busy" "$steal" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# The three cases of configuration $1 on port $2.
cases() {
    echo "== $1 (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    run "$1" get "retrieve by key" "$2"
    run "$1" filter "filter phone eq" "$2"
    run "$1" post "create one row" "$2"
}


echo "== seeding $NROWS contexts (CreateMultiple, 1,000 a request)"
node "$seed_port" --max-body-bytes 4194304
seeding=$SECONDS
python3 - "$NROWS" "$seed_port" <<'PY'
import http.client, json, sys, threading
n, port = int(sys.argv[1]), int(sys.argv[2])
url = "/api/data/v9.2/msdyn_smsengagementctxes/Microsoft.Dynamics.CRM.CreateMultiple"
kind = "Microsoft.Dynamics.CRM.msdyn_smsengagementctx"
headers = {"Authorization": "Bearer bench", "Content-Type": "application/json",
           "OData-Version": "4.0", "Accept": "application/json"}
def row(i):  # ../shared/perf/smsctx/seed.py's row i
    return {"@odata.type": kind, "msdyn_smsengagementctxid": "00000000-0000-4000-8000-%012d" % i,
            "msdyn_name": "SMS engagement %d" % i, "msdyn_countrycode": "US",
            "msdyn_customerphonenumber": "1555%07d" % i, "msdyn_orgphonenumber": "1800%07d" % (i % 1000),
            "msdyn_smsengagementid": "SM%030d" % i,
            "msdyn_smsprovider": 192350000 if i % 2 == 0 else 192350001}
batches = [range(s, min(s + 1000, n + 1)) for s in range(1, n + 1, 1000)]
failed = []
def worker(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for b in batches[k::4]:
        c.request("POST", url, json.dumps({"Targets": [row(i) for i in b]}), headers)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            failed.append("rows %d..%d: HTTP %d %s" % (b[0], b[-1], r.status, body[:300]))
            return
threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
if failed:
    sys.exit("seeding failed: " + failed[0])
PY
# (The Web API's $count stops at 5,000, as Dataverse's does: count in the database.)
count=$("$PGBIN/psql" -qtA "$database" -c "SELECT count(*) FROM msdyn_smsengagementctx")
[ "$count" -ge "$NROWS" ] || { echo "seeded $count rows, expected $NROWS" >&2; exit 1; }
check=$(curl -sf -H "Authorization: Bearer $SMSCTX_BENCH_TOKEN" \
    "http://127.0.0.1:$seed_port/api/data/v9.2/msdyn_smsengagementctxes?\$filter=msdyn_customerphonenumber%20eq%20%271555$(printf %07d "$NROWS")%27")
[[ "$check" == *"00000000-0000-4000-8000-$(printf %012d "$NROWS")"* ]] ||
    { echo "the filter does not find row $NROWS: ${check:0:300}" >&2; exit 1; }
kill "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
pids=()
"$PGBIN/psql" -q "$database" -c "VACUUM ANALYZE"
echo "  $count rows in $((SECONDS - seeding)) s; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync on, synchronous_commit on"

node "$port1"
serving=("${pids[0]}")
if [ -n "$statements" ]; then
    "$PGBIN/psql" -q "$database" -c "CREATE EXTENSION pg_stat_statements"
    for mode in get filter post; do
        "$PGBIN/psql" -qtA "$database" -c "SELECT pg_stat_statements_reset()" >/dev/null
        MODE=$mode wrk -t1 -c4 -d"${DUR}s" -s scripts/bench/harness.lua "http://127.0.0.1:$port1" >"$work/wrk.out"
        reqs=$(sed -nE 's/^RESULT .*reqs=([0-9]+).*/\1/p' "$work/wrk.out")
        echo "== $mode: $reqs requests; top-level statements per request (calls / requests), execution ms per call"
        "$PGBIN/psql" -qtA -F ' | ' "$database" -c "
            SELECT round(calls::numeric / $reqs, 2), round((total_exec_time / calls)::numeric, 3),
                   left(regexp_replace(query, '\s+', ' ', 'g'), 110)
            FROM pg_stat_statements
            WHERE calls >= $reqs / 100 AND query NOT LIKE '%pg_stat_statements%'
            ORDER BY calls DESC"
    done
    exit 0
fi
# The fixed cost of a node that serves nothing (its background jobs), over $IDLE seconds.
idle0=$(ticks "${serving[@]}")
idle_pg0=$(pg_ticks)
sleep "$IDLE"
echo "== an idle node over $IDLE s: CPU s smsctx $(seconds "$idle0" "$(ticks "${serving[@]}")"), PostgreSQL $(seconds "$idle_pg0" "$(pg_ticks)")"
cases "(a) one node" "$port1"

balancer "$port1"
cases "(b) HAProxy, one node" "$lb_port"
echo "  HAProxy 2xx per server: $(spread)"

node "$port2"
serving=("${pids[@]}")
balancer "$port1" "$port2"
cases "(c) HAProxy, two nodes" "$lb_port"
echo "  HAProxy 2xx per server: $(spread)"

echo
echo "Date $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores,"
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -c$CONNS, ${WARM} s warm-up, ${DUR} s measured."
echo
runs_table="| configuration | case | req/s | p50 ms | p99 ms | non-2xx | machine busy / stolen % |
|---|---|---:|---:|---:|---:|---:|"
cpu_table="| configuration | case | requests | smsctx | PostgreSQL | HAProxy | the three | wrk (client) |
|---|---|---:|---:|---:|---:|---:|---:|"
for row in "${rows[@]}"; do
    IFS='|' read -r config label rps p50 p99 reqs non2xx sockerr s pg lb busy steal wrk <<<"$row"
    runs_table+=$'\n'"| $config | $label | $rps | $p50 | $p99 | $((non2xx + sockerr)) | $busy / $steal |"
    cpu_table+=$'\n'"| $config | $label | $reqs | $(per1000 "$s" "$reqs") | $(per1000 "$pg" "$reqs") | $(per1000 "$lb" "$reqs") | $(per1000 "$(awk -v a="$s" -v b="$pg" -v c="$lb" 'BEGIN {print a + b + c}')" "$reqs") | $(per1000 "$wrk" "$reqs") |"
done
echo "$runs_table"
echo
echo "CPU seconds per 1,000 requests (utime+stime from /proc over the measured run / requests done):"
echo
echo "$cpu_table"

# Capacity: cores = req/s x CPU s per request of the mix x HEADROOM, with each case's CPU s per
# request pooled over the runs (CPU seconds added up / requests added up; HAProxy's over (b) and
# (c)); smsctx nodes of CORES_PER_NODE cores, at least two.
cost() { # case column(9 smsctx, 10 PostgreSQL, 11 HAProxy) [configuration to leave out]
    local row cpu=0 reqs=0
    for row in "${rows[@]}"; do
        IFS='|' read -ra f <<<"$row"
        if [ "${f[1]}" = "$1" ] && [ "${f[0]}" != "${3:-}" ]; then
            cpu=$(awk -v a="$cpu" -v b="${f[$(($2 - 1))]}" 'BEGIN {print a + b}')
            reqs=$((reqs + f[5]))
        fi
    done
    awk -v s="$cpu" -v r="$reqs" 'BEGIN {printf "%.9f", (r > 0 ? s / r : 0)}'
}
read -r w_get w_filter w_post <<<"$MIX"
mixed() { # column [configuration to leave out] -> CPU s per request of the mix
    awk -v a="$(cost "retrieve by key" "$@")" -v b="$(cost "filter phone eq" "$@")" \
        -v c="$(cost "create one row" "$@")" -v x="$w_get" -v y="$w_filter" -v z="$w_post" \
        'BEGIN {printf "%.9f", (a * x + b * y + c * z) / (x + y + z)}'
}
c_smsctx=$(mixed 9)
c_pg=$(mixed 10)
c_lb=$(mixed 11 "(a) one node")
ms() { awk -v c="$1" 'BEGIN {printf "%.3f", c * 1000}'; }
echo
echo "CPU ms per request, pooled over the three configurations (HAProxy: over (b) and (c)):"
echo
echo "| case | smsctx | PostgreSQL | HAProxy |"
echo "|---|---:|---:|---:|"
for label in "retrieve by key" "filter phone eq" "create one row"; do
    echo "| $label | $(ms "$(cost "$label" 9)") | $(ms "$(cost "$label" 10)") | $(ms "$(cost "$label" 11 "(a) one node")") |"
done
echo
echo "Capacity for a mix of $w_get % retrieve by key, $w_filter % customer-number filter, $w_post % create"
echo "(CPU ms per request: smsctx $(ms "$c_smsctx"), PostgreSQL $(ms "$c_pg"), HAProxy $(ms "$c_lb");" \
    "headroom x$HEADROOM; nodes of $CORES_PER_NODE cores, at least two):"
echo
echo "| target load | smsctx cores | smsctx nodes | PostgreSQL cores | HAProxy cores |"
echo "|---:|---:|---:|---:|---:|"
for load in 1000 5000 20000; do
    awk -v l="$load" -v s="$c_smsctx" -v p="$c_pg" -v b="$c_lb" -v h="$HEADROOM" -v k="$CORES_PER_NODE" '
        function up(x) { return (x == int(x)) ? x : int(x) + 1 }
        BEGIN {
            sc = l * s * h; n = up(sc / k); if (n < 2) n = 2
            printf "| %d req/s | %.1f | %d | %.1f | %.1f |\n", l, sc, n, l * p * h, l * b * h
        }'
done

# A run with failed requests measured something else than the cases: say so in the exit code.
errors=0
for row in "${rows[@]}"; do
    IFS='|' read -ra f <<<"$row"
    errors=$((errors + f[6] + f[7]))
done
if [ "$errors" -gt 0 ]; then
    echo "error: $errors requests failed (non-2xx or socket errors): the figures above do not hold" >&2
    exit 1
fi
