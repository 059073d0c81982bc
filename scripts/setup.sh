#!/usr/bin/env bash
# Create .venv and install nowcast with its test and pysteps extras.
# CPU torch first: on these machines `pip install torch==2.13.0` takes the CPU build
# from local disk; a GPU user installs their CUDA build of torch>=2.4 before this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet "torch==2.13.0" \
        || .venv/bin/python -m pip install --quiet "torch>=2.4"
fi
.venv/bin/python -m pip install --quiet -e ".[test,pysteps]"
# Optional: systemd-analyze, so a test verifies the unit files (Debian package systemd).
if ! command -v systemd-analyze >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends systemd >/dev/null) \
        || echo "systemd not installed: the unit-file test will be skipped"
fi
