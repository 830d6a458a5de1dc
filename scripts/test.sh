#!/usr/bin/env bash
# Runs every test of the project, on both storage backends:
#   1. the whole suite (unit tests beside the code, the integration suites that start smsctx on
#      port 0 and speak HTTP to it) on SQLite;
#   2. a throwaway PostgreSQL server (installed from Debian's `postgresql` package when missing;
#      its own temporary data directory, a free local port, trust auth on 127.0.0.1 only), the
#      same suite again with SMSCTX_TEST_POSTGRES pointing at it (each test server gets a fresh
#      database; the PostgreSQL-only tests, such as tests/multinode.rs, run too), and the server
#      stopped and deleted afterwards.
# A run where PostgreSQL cannot be started fails; it never skips those tests.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "scripts/test.sh: $*" >&2
    exit 1
}

echo "==> the suite on SQLite"
cargo test --all-targets

echo "==> the suite on PostgreSQL"
pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return
        fi
    done
}
PGBIN="$(pg_bin)"
if [ -z "$PGBIN" ]; then
    echo "scripts/test.sh: PostgreSQL is not installed; installing Debian's postgresql package"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null ||
        fail "apt-get install postgresql failed"
    PGBIN="$(pg_bin)"
    [ -n "$PGBIN" ] || fail "no initdb/pg_ctl under /usr/lib/postgresql/*/bin after installing"
fi

# initdb refuses to run as root: run the server as an unprivileged user.
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
    PGUSER_OS=postgres
    if ! id "$PGUSER_OS" >/dev/null 2>&1; then
        PGUSER_OS=smsctxpg
        id "$PGUSER_OS" >/dev/null 2>&1 || useradd --system --no-create-home "$PGUSER_OS" ||
            fail "cannot create a user to run PostgreSQL"
    fi
    RUN_AS=(runuser -u "$PGUSER_OS" --)
fi

PGTMP="$(mktemp -d /tmp/smsctx-pg.XXXXXX)"
[ "$(id -u)" -eq 0 ] && chown "$PGUSER_OS" "$PGTMP"
stop_postgres() {
    if [ -f "$PGTMP/data/postmaster.pid" ]; then
        "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PGTMP"
}
trap stop_postgres EXIT

"${RUN_AS[@]}" "$PGBIN/initdb" -D "$PGTMP/data" -U postgres -A trust -E UTF8 --no-locale \
    >"$PGTMP/initdb.log" 2>&1 || { cat "$PGTMP/initdb.log" >&2; fail "initdb failed"; }

# A free local port: nothing answers on it, and the server could bind it (a few tries).
port_is_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
started=""
for _ in 1 2 3 4 5; do
    PGPORT=$((20000 + RANDOM % 30000))
    port_is_free "$PGPORT" || continue
    # fsync off: this server is thrown away after the run, and nothing in the suite kills it
    # (the durability tests kill smsctx, whose acknowledged writes PostgreSQL has committed).
    if "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 start \
        -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $PGTMP -c max_connections=400 -c fsync=off -c full_page_writes=off" \
        >/dev/null 2>&1; then
        started=yes
        break
    fi
done
[ -n "$started" ] || { cat "$PGTMP/server.log" >&2 || true; fail "PostgreSQL did not start"; }
echo "scripts/test.sh: $("$PGBIN/postgres" --version) on 127.0.0.1:$PGPORT"

SMSCTX_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PGPORT/postgres" cargo test --all-targets
