# Installs the real Dataverse client libraries tests/clients.rs drives (and playwright-core,
# which tests/console.rs drives Debian's chromium with), with pinned versions,
# once, under target/clients/ (a Python venv and a Node project of their own). Source it, then
# call install_clients; it exports SMSCTX_CLIENTS_PYTHON and SMSCTX_CLIENTS_NODE_MODULES.
# A second call (or run) reuses what is installed when the pins have not changed.

CLIENTS_PY_PINS="PowerPlatform-Dataverse-Client==1.1.0 dataverse-api==1.4.3"
CLIENTS_NPM_PINS="dynamics-web-api@2.5.0 dataverse-webapi@3.3.0 playwright-core@1.65.1"

install_clients() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/clients"
    mkdir -p "$root"
    local stamp="$root/installed"
    local want="$CLIENTS_PY_PINS | $CLIENTS_NPM_PINS"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        echo "==> installing the client libraries into $root"
        rm -rf "$root/venv" "$root/node"
        python3 -m venv "$root/venv"
        "$root/venv/bin/pip" install --quiet --disable-pip-version-check $CLIENTS_PY_PINS
        mkdir -p "$root/node"
        (cd "$root/node" && echo '{"name":"smsctx-client-tests","private":true}' > package.json \
            && npm install --silent --no-audit --no-fund --save-exact $CLIENTS_NPM_PINS)
        echo "$want" > "$stamp"
    fi
    export SMSCTX_CLIENTS_PYTHON="$root/venv/bin/python"
    export SMSCTX_CLIENTS_NODE_MODULES="$root/node/node_modules"
}
