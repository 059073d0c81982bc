#!/usr/bin/env bash
# Every GPU check of the model in one go, for a lent H200 (under 8 minutes).
#
#   bash bench/gpu.sh            # results under $OUT (else bench/out/gpu)
#
# Needs python3 with a CUDA torch, numpy and rich (the device image has them);
# nothing is fetched. nowcast runs from src/ (PYTHONPATH), not installed. Wheels
# in .whl/ (pysteps, structlog, pydantic ...: see the device README) are
# installed to /tmp/site first when present: with pysteps the forecast latency
# includes the real Lucas-Kanade flow, else the flow is zeros and reported so.
#
# Runs, each under its own time limit:
#   1. bench/infer.py: one forecast at 250x250x18 through ModelForecaster and
#      the raw net (median of 10), bf16; target under 0.2 s;
#   2. bench/train.py: batch 16 and 32 at 250x250x18, bf16, activation
#      checkpointing off, then on: samples/s, peak memory (batch 32 must fit),
#      FLOPs/sample and the fraction of the bf16 peak (target above 40 %);
#   3. batch 16 with NCDHW weights instead of channels-last, and with
#      torch.compile of the cell steps;
# then prints one table of everything.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
start=$SECONDS
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/device.txt"

run() {  # run LIMIT_S NAME ARGS...: one bench, its log under $OUT
    local limit=$1 name=$2
    shift 2
    echo "== $name (limit ${limit}s, at $((SECONDS - start))s)"
    timeout "$limit" "$PY" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || echo "!! $name exited with $rc" | tee -a "$OUT/$name.log"
}

run 60 infer bench/infer.py --repeats 10 --json "$OUT/infer.json"
run 130 train_bf16 bench/train.py --batch-sizes 16 32 --steps 5 --warmup 2 \
    --json "$OUT/train_bf16.json"
run 100 train_bf16_ckpt bench/train.py --batch-sizes 16 32 --steps 4 --warmup 1 \
    --checkpointing --json "$OUT/train_bf16_ckpt.json"
run 60 train_bf16_ncdhw bench/train.py --batch-sizes 16 --steps 4 --warmup 1 \
    --no-channels-last --json "$OUT/train_bf16_ncdhw.json"
run 90 train_bf16_compile bench/train.py --batch-sizes 16 --steps 4 --warmup 2 \
    --compile --json "$OUT/train_bf16_compile.json"

$PY - "$OUT" <<'PYEOF' | tee "$OUT/table.md"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| check | batch | ckpt | compile | samples/s | s/step | peak GiB "
      "| GFLOP/sample | TFLOP/s | of bf16 peak |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name in ("train_bf16", "train_bf16_ckpt", "train_bf16_ncdhw",
             "train_bf16_compile"):
    f = out / f"{name}.json"
    if not f.is_file():
        print(f"| {name} | - | | | did not finish | | | | | |")
        continue
    for r in json.loads(f.read_text()):
        if "error" in r:
            print(f"| {name} | {r['batch']} | | | {r['error'][:60]} | | | | | |")
            continue
        print(f"| {name} | {r['batch']} | {r['checkpointing']} | {r['compile']} "
              f"| {r['samples_per_s']:.2f} | {r['step_s']:.3f} "
              f"| {r['peak_memory_gib']:.1f} | {r['flops_per_sample'] / 1e9:.0f} "
              f"| {r['tflops']:.1f} | {r.get('peak_fraction', 0):.1%} |")
f = out / "infer.json"
if f.is_file():
    r = json.loads(f.read_text())
    print(f"\nforecast latency {r['grid']}: {r['forecaster_s']:.3f} s through "
          f"ModelForecaster (flow {r['flow_s']:.3f} s: {r['flow'][:60]}), raw net "
          f"{r['net_s']:.3f} s, peak {r['peak_memory_gib']:.2f} GiB (target 0.2 s)")
else:
    print("\nforecast latency: did not finish")
PYEOF
echo "total $((SECONDS - start)) s; results in $OUT"
