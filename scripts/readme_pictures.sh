#!/usr/bin/env bash
# Make the README's pictures with nowcast's own commands, on a real case:
# MeteoSwiss 2015-05-15 (convection over the Alps, ../shared/data/radar-cases).
#
#   bash scripts/readme_pictures.sh [CASE_DIR] [PICTURES_DIR]
#
# Forecasts every set of the case with persistence, the TITAN-style baseline,
# pysteps extrapolation and S-PROG and the shipped real-data model, scores each
# with `nowcast eval --json`, and draws `nowcast plot` quicklook and skill chart.
# About 4 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
CASE=${1:-../shared/data/radar-cases/mch-20150515}
PICTURES=${2:-docs/pictures}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
NOWCAST=${NOWCAST:-.venv/bin/nowcast}

reports=()
for method in model persistence titan extrapolation sprog; do
    extra=()
    [ "$method" = model ] && extra=(--model models/real2d.pt)
    "$NOWCAST" predict --input "$CASE" --output "$WORK/$method" --method "$method" \
        "${extra[@]}" --log-format json 2>/dev/null | tail -1
    "$NOWCAST" eval --obs "$CASE" --forecasts "$WORK/$method" --json "$WORK/$method.json" \
        --log-format json >/dev/null
    reports+=("$WORK/$method.json")
done
mkdir -p "$PICTURES"
"$NOWCAST" plot --eval "${reports[@]}" --thresholds 20,35 \
    --title "CSI by lead time, $(basename "$CASE") (MeteoSwiss), every set of the case" \
    -o "$PICTURES/skill-$(basename "$CASE").png"
"$NOWCAST" plot --forecasts "$WORK/model" --issue 2015-05-15T17:00:00Z --obs "$CASE" \
    -o "$PICTURES/quicklook-$(basename "$CASE").png"
