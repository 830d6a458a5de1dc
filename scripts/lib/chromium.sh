# Installs Debian's `chromium` package when /usr/bin/chromium is missing: the headless browser
# tests/console.rs drives with playwright-core (installed by scripts/lib/clients.sh). A test
# tool's own browser download does not work here, so the browser comes from Debian. Source it,
# then call install_chromium.

install_chromium() {
    if [ -x /usr/bin/chromium ]; then
        return 0
    fi
    echo "==> chromium: not installed; installing Debian's chromium package"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq || { echo "chromium: apt-get update failed" >&2; return 1; }
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null ||
        { echo "chromium: apt-get install chromium failed" >&2; return 1; }
}
