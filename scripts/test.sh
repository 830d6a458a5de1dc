#!/usr/bin/env bash
# Runs every test of the project, on both storage backends:
#   1. the whole suite (unit tests beside the code, the integration suites that start smsctx on
#      port 0 and speak HTTP to it) on SQLite;
#   2. the same suite again on a throwaway PostgreSQL server (scripts/lib/postgres.sh: installed
#      from Debian's `postgresql` package when missing, its own temporary data directory, a free
#      local port, stopped and deleted afterwards), with SMSCTX_TEST_POSTGRES pointing at it:
#      each test server gets a fresh database, and the PostgreSQL-only tests (tests/multinode.rs,
#      tests/migrate.rs, the store contract tests) run. Nothing is rebuilt between the two runs.
#   3. the README's code blocks (scripts/readme-check.sh) against a fresh server.
#   The fuzz targets of tests/fuzz.rs run 10 s each on the first pass (SMSCTX_FUZZ_SECONDS), 1 s
#   on the second.
# A run where PostgreSQL cannot be started fails; it never skips those tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real client libraries tests/clients.rs drives (pinned; installed once under target/clients).
source scripts/lib/clients.sh
install_clients
# The headless browser the console's tests (tests/console.rs) drive with playwright-core.
source scripts/lib/chromium.sh
install_chromium

# The fuzz targets (tests/fuzz.rs) run for this long each on the first pass, briefly on the second.
FUZZ_SECONDS="${SMSCTX_FUZZ_SECONDS:-10}"

echo "==> the suite on SQLite"
SMSCTX_FUZZ_SECONDS="$FUZZ_SECONDS" cargo test --all-targets

echo "==> the suite on PostgreSQL"
# fsync off: this server is thrown away after the run, and nothing in the suite kills it (the
# durability tests kill smsctx, whose acknowledged writes PostgreSQL has already committed).
source scripts/lib/postgres.sh
start_postgres off
SMSCTX_FUZZ_SECONDS=1 SMSCTX_TEST_POSTGRES="$SMSCTX_PG_URL" cargo test --all-targets

echo "==> the README's code blocks, as a reader would paste them, against a fresh server"
bash scripts/readme-check.sh
