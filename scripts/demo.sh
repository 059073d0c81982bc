#!/usr/bin/env bash
# Set up (idempotent) and run the demo: a simulated radar feeding the real daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/nowcast demo "$@"
