# A throwaway PostgreSQL server for tests and benchmarks, sourced by scripts/test.sh and
# scripts/bench.sh.
#
# `start_postgres [fsync on|off]` installs Debian's `postgresql` package when initdb/pg_ctl are
# missing (they live under /usr/lib/postgresql/*/bin), creates a data directory of its own under
# /tmp, starts the server on a free port of 127.0.0.1 with trust auth (as an unprivileged user
# when run as root, since initdb refuses root), registers `stop_postgres` as the EXIT trap, and
# sets SMSCTX_PG_URL to the server's `postgres` database. Any failure exits the calling script
# with a message: a run never goes on without the server it asked for.

pg_fail() {
    echo "postgres: $*" >&2
    exit 1
}

pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return
        fi
    done
}

stop_postgres() {
    if [ -n "${PGTMP:-}" ] && [ -f "$PGTMP/data/postmaster.pid" ]; then
        "${PG_RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    [ -z "${PGTMP:-}" ] || rm -rf "$PGTMP"
}

start_postgres() {
    local fsync="${1:-on}"
    PGBIN="$(pg_bin)"
    if [ -z "$PGBIN" ]; then
        echo "postgres: not installed; installing Debian's postgresql package"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq || pg_fail "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null ||
            pg_fail "apt-get install postgresql failed"
        PGBIN="$(pg_bin)"
        [ -n "$PGBIN" ] || pg_fail "no initdb/pg_ctl under /usr/lib/postgresql/*/bin after installing"
    fi

    # initdb refuses to run as root: run the server as an unprivileged user.
    PG_RUN_AS=()
    local os_user=""
    if [ "$(id -u)" -eq 0 ]; then
        os_user=postgres
        if ! id "$os_user" >/dev/null 2>&1; then
            os_user=smsctxpg
            id "$os_user" >/dev/null 2>&1 || useradd --system --no-create-home "$os_user" ||
                pg_fail "cannot create a user to run PostgreSQL"
        fi
        PG_RUN_AS=(runuser -u "$os_user" --)
    fi

    PGTMP="$(mktemp -d /tmp/smsctx-pg.XXXXXX)"
    trap stop_postgres EXIT
    if [ -n "$os_user" ]; then
        chown "$os_user" "$PGTMP"
    fi
    "${PG_RUN_AS[@]}" "$PGBIN/initdb" -D "$PGTMP/data" -U postgres -A trust -E UTF8 --no-locale \
        >"$PGTMP/initdb.log" 2>&1 || { cat "$PGTMP/initdb.log" >&2; pg_fail "initdb failed"; }

    # A free local port: nothing answers on it, and the server could bind it (a few tries).
    local started="" try
    for try in 1 2 3 4 5; do
        PGPORT=$((20000 + RANDOM % 30000))
        if (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null; then
            continue
        fi
        if "${PG_RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 \
            -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $PGTMP -c max_connections=400 -c fsync=$fsync -c full_page_writes=$fsync" \
            start >/dev/null 2>&1; then
            started=yes
            break
        fi
    done
    [ -n "$started" ] || { cat "$PGTMP/server.log" >&2 || true; pg_fail "PostgreSQL did not start"; }
    SMSCTX_PG_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
    echo "postgres: $("$PGBIN/postgres" --version) on 127.0.0.1:$PGPORT (fsync $fsync)"
}
