#!/usr/bin/env bash
# Installs what `cargo xtask bench` needs beyond the Rust toolchain, idempotently: matplotlib
# for the report's chart, in a virtual environment under target/bench-venv (no root needed).
# Prints the environment's python.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${CARGO_TARGET_DIR:-$ROOT/target}/bench-venv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" -c "import matplotlib" >/dev/null 2>&1; then
    "$VENV/bin/pip" install --quiet "matplotlib==3.9.2" >&2
fi
echo "$VENV/bin/python"
