#!/usr/bin/env bash
# Installs what the integration tests need beyond the Rust toolchain:
# - coturn's `turnserver`, which tests/it/coturn.rs starts on loopback;
# - Node.js (18 or newer) and npm, and the official KVS WebRTC JavaScript SDK with its
#   dependencies in tests/js-sdk/node_modules (`npm ci` from the committed package-lock.json),
#   for crates/kvs-signaling-server/tests/js_sdk.rs;
# - Debian's Chromium and certutil (libnss3-tools), for the same SDK in a real browser;
# - Debian's redis-server and redis-cli, which the cluster tests (tests/cluster) start on
#   loopback with their own data directories, and HAProxy, which balances their nodes.
# Idempotent: each step is a no-op when its tool is on PATH, and `npm ci` runs only when
# tests/js-sdk/node_modules is missing or older than package-lock.json. apt-get installs need
# root (or sudo) on Debian or Ubuntu; `npm ci` runs as the invoking user. It never starts coturn,
# Redis or HAProxy, and stops the system services their packages start.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
JS_DIR="$ROOT/tests/js-sdk"
MIN_NODE_MAJOR=18

export DEBIAN_FRONTEND=noninteractive

SUDO=()
sudo_ready=false
# Root, or sudo, for apt-get; decided on first need, so a machine that has everything needs
# neither.
need_root() {
    if "$sudo_ready"; then
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: apt-get not found; install $* by hand" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO=(sudo)
        else
            echo "install-test-deps: run as root or install sudo" >&2
            exit 1
        fi
    fi
    sudo_ready=true
}

# Installs Debian packages. Refreshes the package lists only when they are missing or do not know
# a package yet, or when they are stale and the install fails on a package the mirror no longer
# has.
apt_install() {
    need_root "$@"
    local known=true package
    for package in "$@"; do
        if ! apt-cache show "$package" >/dev/null 2>&1; then
            known=false
        fi
    done
    if ! "$known"; then
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" apt-get install -y --no-install-recommends "$@"
    elif ! "${SUDO[@]}" apt-get install -y --no-install-recommends "$@"; then
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" apt-get install -y --no-install-recommends "$@"
    fi
}

# --- coturn -----------------------------------------------------------------------------------

if command -v turnserver >/dev/null 2>&1; then
    echo "install-test-deps: turnserver already installed: $(command -v turnserver)"
else
    apt_install coturn
    # The package enables coturn.service, and on a host running systemd its postinst starts it
    # with the stock /etc/turnserver.conf on port 3478. The tests start their own; stop that one.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        "${SUDO[@]}" systemctl disable --now coturn.service || true
    fi
    if ! command -v turnserver >/dev/null 2>&1; then
        echo "install-test-deps: coturn installed but turnserver is not on PATH" >&2
        exit 1
    fi
    echo "install-test-deps: installed $(command -v turnserver)"
fi

# --- Redis and HAProxy, for the cluster tests -------------------------------------------------

# Stops and disables a service a package just enabled on a host running systemd (the tests
# start their own, on ports of their own).
stop_service() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        "${SUDO[@]}" systemctl disable --now "$1" || true
    fi
}
cluster_missing=()
command -v redis-server >/dev/null 2>&1 || cluster_missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || cluster_missing+=(redis-tools)
command -v haproxy >/dev/null 2>&1 || cluster_missing+=(haproxy)
if [ "${#cluster_missing[@]}" -eq 0 ]; then
    echo "install-test-deps: redis-server, redis-cli and haproxy already installed"
else
    apt_install "${cluster_missing[@]}"
    for package in "${cluster_missing[@]}"; do
        case "$package" in
            redis-server) stop_service redis-server.service ;;
            haproxy) stop_service haproxy.service ;;
        esac
    done
    for tool in redis-server redis-cli haproxy; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "install-test-deps: ${cluster_missing[*]} installed but $tool is not on PATH" >&2
            exit 1
        fi
    done
    echo "install-test-deps: installed $(redis-server --version | cut -d' ' -f1-3) and $(haproxy -v | head -n1)"
fi

# --- Chromium and certutil, for the browser test ---------------------------------------------

# tests/js-sdk/browser.mjs drives Debian's Chromium with playwright-core (no browser download)
# and trusts the server's development CA through an NSS database that certutil makes.
chromium_missing=()
command -v chromium >/dev/null 2>&1 || chromium_missing+=(chromium)
command -v certutil >/dev/null 2>&1 || chromium_missing+=(libnss3-tools)
if [ "${#chromium_missing[@]}" -eq 0 ]; then
    echo "install-test-deps: chromium and certutil already installed"
else
    apt_install "${chromium_missing[@]}"
    for tool in chromium certutil; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "install-test-deps: chromium and libnss3-tools installed but $tool is not on PATH" >&2
            exit 1
        fi
    done
    echo "install-test-deps: installed $(chromium --version 2>/dev/null || echo chromium) and certutil"
fi

# --- Node.js and npm --------------------------------------------------------------------------

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    echo "install-test-deps: node $(node --version) and npm $(npm --version) already installed"
else
    missing=()
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    # NodeSource's nodejs package carries npm itself and conflicts with Debian's npm; Debian's
    # nodejs does not, so npm is a package of its own there.
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    apt_install "${missing[@]}"
    for tool in node npm; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "install-test-deps: nodejs and npm installed but $tool is not on PATH" >&2
            exit 1
        fi
    done
    echo "install-test-deps: installed node $(node --version) and npm $(npm --version)"
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt "$MIN_NODE_MAJOR" ]; then
    echo "install-test-deps: node $(node --version) is too old for tests/js-sdk; it needs" \
        "Node.js $MIN_NODE_MAJOR or newer (e.g. from https://github.com/nodesource/distributions)" >&2
    exit 1
fi

# --- the JavaScript SDK, from the lock file ---------------------------------------------------

# npm ci writes node_modules/.package-lock.json last: when it is missing or older than the lock
# file, the install is missing, unfinished or stale.
if [ ! -d "$JS_DIR/node_modules" ] ||
    [ "$JS_DIR/package-lock.json" -nt "$JS_DIR/node_modules/.package-lock.json" ]; then
    echo "install-test-deps: npm ci in $JS_DIR"
    # --legacy-peer-deps: the lock file leaves out optional peer dependencies (Expo, React Native,
    # pulled in by isomorphic-webcrypto's optional `expo-random: *`) that npm cannot lock
    # consistently. No package there needs an install script; --ignore-scripts runs none.
    (cd "$JS_DIR" && npm ci --legacy-peer-deps --no-audit --no-fund --ignore-scripts)
    # Stamp the install with its finishing time, whatever times npm kept.
    touch "$JS_DIR/node_modules/.package-lock.json"
    echo "install-test-deps: installed tests/js-sdk/node_modules"
else
    echo "install-test-deps: tests/js-sdk/node_modules is up to date with package-lock.json"
fi
