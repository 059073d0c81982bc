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
# LROSE's PrintMdv and LdataWatcher (../shared/lrose) read our forecasts in the tests;
# they need netCDF and HDF5 runtime libraries (Debian packages, named in its README).
LROSE_BIN="${NOWCAST_SHARED_DIR:-../shared}/lrose/bin/PrintMdv"
if [ -x "$LROSE_BIN" ] && ldd "$LROSE_BIN" 2>/dev/null | grep -q "not found"; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            libnetcdf19 libhdf5-103-1 libhdf5-hl-100 >/dev/null \
         || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y \
            -qq --no-install-recommends libnetcdf19 libhdf5-103-1 libhdf5-hl-100 \
            >/dev/null)) || echo "LROSE runtime libraries not installed: its tests will fail"
    else
        echo "PrintMdv needs libnetcdf19 libhdf5-103-1 libhdf5-hl-100 (run as root to install)"
    fi
fi
