#!/usr/bin/env bash
# PhishLens tasks. Usage:
#   bash tasks.sh run [--data DIR]   install if needed, build results if the store is empty, launch the dashboard
#   bash tasks.sh test [PYTEST ARGS] install if needed, run the whole test suite
#   bash tasks.sh install            create .venv and install requirements (skipped when up to date)
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY="$VENV/bin/python"

install() {
    if [ ! -x "$PY" ]; then
        echo "==> creating virtual environment in $VENV"
        "$(command -v python3.11 || command -v python3)" -m venv "$VENV"
    fi
    local stamp="$VENV/.installed" want
    want=$(cat requirements.txt requirements-nodeps.txt | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return
    fi
    echo "==> installing requirements (first run only)"
    # torch first, pinned: 2.13.0 is the CPU build on disk; anything else pulls CUDA wheels.
    "$PY" -m pip install -q --disable-pip-version-check "$(grep -E '^torch==' requirements.txt)"
    "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt
    "$PY" -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
    echo "$want" > "$stamp"
}

prepare() {
    "$PY" cli.py prepare-model
}

case "${1:-run}" in
    install)
        install
        ;;
    run)
        shift || true
        install
        prepare
        "$PY" cli.py demo --if-empty "$@"
        exec "$PY" cli.py serve
        ;;
    test)
        shift || true
        install
        prepare
        exec "$PY" -m pytest "$@"
        ;;
    *)
        echo "usage: bash tasks.sh [run [--data DIR] | test [pytest args] | install]" >&2
        exit 2
        ;;
esac
