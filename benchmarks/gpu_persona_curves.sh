#!/usr/bin/env bash
# The persona learning curves of benchmarks/persona_learning_curve.py on one GPU, several runs at once.
#
# A 135M model with a batch of two examples leaves a GPU mostly idle, so the runs below share it as
# separate processes. Each writes its own CSV (the same columns as the CPU curve, with the device in
# the last one) to OUT_DIR as it goes, so runs stopped by the time limit keep what they measured.
# Every run is float32 on the same pairs as the CPU curve (PAIRS_DIR, written on a machine with the
# offline corpora by `persona_learning_curve.py --pairs-dir`), so its rows can be read beside the CPU
# rows; they are not the same bytes (GPU kernels sum in another order).
#
#   PAIRS_ROOT=pairs OUT_DIR=out LIMIT_S=420 bash benchmarks/gpu_persona_curves.sh [SET] [MODEL]
#
# PAIRS_ROOT holds one folder of pairs per passage length: w20/ (and w10/ for the `smoke` set).
# SET is `curves` (the three formulations to 1,500 steps and more, and two higher learning rates)
# or `smoke` (what learns within a smoke run's few hundred steps: passage length, learning rate,
# LoRA rank). MODEL defaults to smollm2-135m-instruct (its cache folder is prepared once, before the
# runs start); `tiny-random` tries the whole script on a CPU in a minute (DEVICE=cpu, STEPS_SCALE=0.01).
set -u
set_name=${1:-curves}
model=${2:-smollm2-135m-instruct}
pairs=${PAIRS_ROOT:?set PAIRS_ROOT to the folder of w20/ (and w10/) pair folders}
out=${OUT_DIR:?set OUT_DIR to the folder the CSVs and logs go to}
limit=${LIMIT_S:-420}
device=${DEVICE:-cuda}
steps_scale=${STEPS_SCALE:-1}  # tiny-random checks: STEPS_SCALE=0.01 runs each curve to 1% of its steps
mkdir -p "$out" "$out/logs"
python3 -m persrm_lib.models.registry prepare "$model" >"$out/logs/prepare.log" 2>&1 || {
  cat "$out/logs/prepare.log"
  exit 1
}

# name | words | arguments (steps and checkpoints are scaled by STEPS_SCALE)
case $set_name in
curves) runs=(
  "pairwise-trace|20|--formulation pairwise-trace --steps 1500 --eval-at 250 500 750 1000 1250 1500"
  "pairwise-verdict|20|--formulation pairwise-verdict --steps 1500 --eval-at 250 500 750 1000 1250 1500"
  "pointwise-trace|20|--formulation pointwise-trace --steps 3000 --eval-at 250 500 750 1000 1250 1500 2000 2500 3000"
  "pointwise-lr1e-3|20|--formulation pointwise-trace --lr 1e-3 --steps 500 --eval-at 100 150 200 250 300 400 500"
  "pointwise-lr2e-3|20|--formulation pointwise-trace --lr 2e-3 --steps 500 --eval-at 100 150 200 250 300 400 500"
) ;;
smoke) runs=(
  "smoke-w10-lr3e-4|10|--formulation pointwise-trace --lr 3e-4 --steps 300 --eval-at 100 150 200 250 300"
  "smoke-w10-lr6e-4|10|--formulation pointwise-trace --lr 6e-4 --steps 300 --eval-at 100 150 200 250 300"
  "smoke-w10-lr1e-3|10|--formulation pointwise-trace --lr 1e-3 --steps 300 --eval-at 100 150 200 250 300"
  "smoke-w10-lr6e-4-r64|10|--formulation pointwise-trace --lr 6e-4 --rank 64 --steps 300 --eval-at 100 150 200 250 300"
  "smoke-w20-lr6e-4|20|--formulation pointwise-trace --lr 6e-4 --steps 300 --eval-at 100 150 200 250 300"
  "smoke-w20-lr3e-4-r64|20|--formulation pointwise-trace --lr 3e-4 --rank 64 --steps 300 --eval-at 100 150 200 250 300"
) ;;
*) echo "unknown set $set_name: curves or smoke" >&2; exit 2 ;;
esac
scale() {  # scale every integer after --steps/--eval-at by STEPS_SCALE (at least 1, distinct)
  python3 - "$steps_scale" "$@" <<'EOF'
import sys
factor, words, out, scaling = float(sys.argv[1]), sys.argv[2:], [], False
for w in words:
    if w.startswith("--"):
        scaling = w in ("--steps", "--eval-at")
    elif scaling:
        w = str(max(1, round(int(w) * factor)))
    out.append(w)
print(" ".join(out))
EOF
}
pids=()
for run in "${runs[@]}"; do
  name=${run%%|*}
  rest=${run#*|}
  words=${rest%%|*}
  # shellcheck disable=SC2046
  timeout "$limit" python3 benchmarks/persona_learning_curve.py $(scale ${rest#*|}) --model "$model" \
    --device "$device" --eval-batch 64 --pairs-dir "$pairs/w$words" --words "$words" --test-pairs 32 --val-pairs 32 \
    --state-dir "$HOME/curve_state/$name" --out "$out/$name.csv" >"$out/logs/$name.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >"$out/logs/gpu.txt" 2>&1 || true
tar -C "$out" -czf "$out/logs.tgz" logs && rm -rf "$out/logs"
ls -la "$out"
