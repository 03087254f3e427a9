#!/usr/bin/env bash
# Installs what the integration tests need beyond the Rust toolchain: coturn's `turnserver`,
# which tests/it/coturn.rs starts on loopback. Idempotent: a no-op when `turnserver` is on
# PATH. Run as root (or with sudo available) on Debian or Ubuntu. It never starts coturn.
set -euo pipefail

if command -v turnserver >/dev/null 2>&1; then
    echo "install-test-deps: turnserver already installed: $(command -v turnserver)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: apt-get not found; install coturn (turnserver) by hand" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-test-deps: run as root or install sudo" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive

install_coturn() {
    "${SUDO[@]}" apt-get install -y --no-install-recommends coturn
}

# Refresh the package lists only when they are missing or do not know coturn yet, or when
# they are stale and the install fails on a package the mirror no longer has.
if ! apt-cache show coturn >/dev/null 2>&1; then
    "${SUDO[@]}" apt-get update
    install_coturn
elif ! install_coturn; then
    "${SUDO[@]}" apt-get update
    install_coturn
fi

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
