#!/usr/bin/env bash
# The closed loop's phases on a GPU machine reached through the device tool (no network there):
#
#   scripts/gpu/closed_loop.sh WORK PHASE [PHASE ...]
#   phases: prepare | eval:random_init | sft | eval:sft | grpo | eval:grpo | preflight | pack
#
# It installs the carried wheels (.device/whl, from scripts/gpu/fetch.sh) once, restores a saved state from
# .device/state (the parts `pack` wrote in an earlier session) when WORK is empty, runs each phase with
# `python -m training.closed_loop`, and leaves under $OUT: results.tar.gz (every phase's JSON and the log),
# and after `pack` the state needed by later phases (config, tokenizer, SFT model, results) as parts of at
# most 15 MB. `preflight` runs the whole loop at CPU size on the GPU, through DeepSpeed ZeRO-3, in its own
# folder: a quick check of the GPU-only code path before the long phases. LOOP_ARGS is appended to the
# other phases' commands (e.g. "--profile cpu" for a try on a CPU machine).
set -uo pipefail
WORK=${1:?usage: closed_loop.sh WORK PHASE...}; shift
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TORCH_CUDA_ARCH_LIST=9.0
if [ ! -d /tmp/site/openrlhf ]; then
  bash scripts/gpu/install.sh > "$OUT/install.log" 2>&1 || { tail -40 "$OUT/install.log"; exit 1; }
fi
export PYTHONPATH=/tmp/site:$PWD
if [ ! -f "$WORK/config.json" ] && ls .device/state/state.tar.part-* > /dev/null 2>&1; then
  mkdir -p "$WORK" && cat .device/state/state.tar.part-* | tar -x -C "$WORK" && echo "restored state into $WORK"
fi
save_results() {  # after every phase, so a command stopped at its time limit still returns what it finished
  rm -rf /tmp/res && mkdir -p /tmp/res && cp "$WORK"/results/*.json /tmp/res/ 2>/dev/null
  [ -d /tmp/preflight/results ] && mkdir -p /tmp/res/preflight && cp /tmp/preflight/results/*.json /tmp/res/preflight/
  cp "$OUT/loop.log" /tmp/res/ 2>/dev/null; tar -C /tmp -czf "$OUT/results.tar.gz" res
}
status=0
for phase in "$@"; do
  start=$(date +%s)
  case $phase in
    eval:*) cmd=(python3 -m training.closed_loop eval --model "${phase#eval:}" --work "$WORK") ;;
    preflight) cmd=(python3 -m training.closed_loop all --work /tmp/preflight --profile cpu --set device=cuda
                    --set trainer=deepspeed --set zero_stage=3) ;;
    pack) tar -C "$WORK" -cf - config.json tokenizer sft/selected results | split -b 15000000 - "$OUT/state.tar.part-"
          ls -la "$OUT"; continue ;;
    *) cmd=(python3 -m training.closed_loop "$phase" --work "$WORK" ${LOOP_ARGS:-}) ;;
  esac
  echo "=== $phase: ${cmd[*]}" | tee -a "$OUT/loop.log"
  "${cmd[@]}" >> "$OUT/loop.log" 2>&1
  rc=$?
  echo "=== $phase rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$OUT/loop.log"
  grep -E "closed_loop\] (SFT|grpo step|wrote|.*done)" "$OUT/loop.log" | tail -4
  save_results
  [ $rc -ne 0 ] && { grep -B2 -A25 "Traceback" "$OUT/loop.log" | tail -40; status=$rc; [ "$phase" = preflight ] || break; }
done
exit $status
