#!/usr/bin/env bash
# Runs README.md's ```sh code blocks, in order, as one shell session in an empty directory, with
# the freshly built `smsctx` first on PATH: the walk-throughs must run as a reader would paste
# them. A block after a `<!-- readme-check: skip ... -->` line is not run (installing, the test
# suite, PostgreSQL, a real provider account). Every curl runs with --fail-with-body, so a 4xx or
# 5xx the README does not expect fails the check; the first failing command ends it, naming the
# README line its block starts at. Ports 8080, 8081 and 8443 are replaced by free ones.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
for tool in curl jq openssl python3; do
    command -v "$tool" >/dev/null || { echo "readme-check: the README's examples need $tool" >&2; exit 1; }
done
cargo build --quiet
work="$(mktemp -d /tmp/smsctx-readme.XXXXXX)"
cleanup() { [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1="$(free_port)" p2="$(free_port)" p3="$(free_port)"

{
    cat <<PRELUDE
set -euo pipefail
export PATH="$root/target/debug:\$PATH"
# \`smsctx serve\` without --listen: the README's 127.0.0.1:8080, moved to a free port.
export SMSCTX_LISTEN=127.0.0.1:$p1
curl() { command curl --fail-with-body "\$@"; }
trap 'kill \$(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
trap 'echo "readme-check: failed in the block at README.md:\$README_LINE (exit \$?)" >&2' ERR
PRELUDE
    awk '
        /<!-- readme-check: skip/ { skip = 1; next }
        /^ *```sh *$/ { inblock = 1; if (!skip) printf "README_LINE=%d\necho \"== README.md:%d\" >&2\n", NR, NR; next }
        /^ *```/ && inblock { inblock = 0; skip = 0; next }
        inblock && !skip { print }
    ' README.md | sed -e "s/8080/$p1/g" -e "s/8081/$p2/g" -e "s/8443/$p3/g"
    echo 'echo "readme-check: every block ran" >&2'
} >"$work/readme.sh"

cd "$work"
env -u SMSCTX_DATABASE -u SMSCTX_LISTEN -u SMSCTX_ADMIN_TOKEN -u SMSCTX_JWT_SECRET \
    timeout 600 bash "$work/readme.sh" >"$work/out.log" 2>&1 || {
    status=$?
    tail -n 40 "$work/out.log" >&2
    echo "readme-check: FAILED (the script is $work/readme.sh; KEEP=1 keeps it)" >&2
    exit "$status"
}
grep -q "readme-check: every block ran" "$work/out.log" || {
    tail -n 40 "$work/out.log" >&2
    echo "readme-check: FAILED (the script stopped before its end)" >&2
    exit 1
}
echo "readme-check: every README block ran"
