#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv: torch + torchvision,
# then labbench itself (editable) with its test tools; with --browser (the test command) also,
# as root, the Chromium that the site's browser test drives. Idempotent and quick when nothing
# changed: a stamp of pyproject.toml skips the pip step.
set -euo pipefail
BROWSER=0
for arg in "$@"; do
    case "$arg" in
        --browser) BROWSER=1 ;;
        *) echo "[setup] unknown option $arg (valid: --browser)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${LABBENCH_VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}   # never newer than 2.14.1 here

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

stamp="$VENV/.labbench-setup"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
        echo "[setup] installing $TORCH_SPEC (large: a CUDA build that also runs on CPU)"
        # shellcheck disable=SC2086
        "$VENV/bin/python" -m pip install --quiet $TORCH_SPEC
    fi
    echo "[setup] installing labbench and its dependencies"
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
    echo "$want" > "$stamp"
    echo "[setup] done in ${SECONDS} s"
fi

# The site's browser test (tests/test_site.py) drives Debian's Chromium headless through
# chromium-driver. Best effort: installed quietly where apt-get may run (root); anywhere
# else, or when apt fails, the test says the browser is missing and skips. Never fails the set-up.
if [ "$BROWSER" = 1 ] && { ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing chromium and chromium-driver (apt-get) for the site's browser test"
        export DEBIAN_FRONTEND=noninteractive
        { apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; }; } \
            || echo "[setup] chromium could not be installed: tests/test_site.py's browser test will skip"
    fi
fi
