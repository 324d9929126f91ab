#!/usr/bin/env bash
# WideSeek-R1 multi-agent GRPO on one machine (default: 8 GPUs, everything colocated).
#
#   MODEL=Qwen/Qwen3-4B TRAIN_DATA=data/hybrid.jsonl WIDESEEK_TRAIN_CONFIG=configs/train.json \
#     training/launch/train_single_node.sh
#
# Runs `python -m training.openrlhf_ext.train` (the multi-row extension, then OpenRLHF's train_ppo_ray) in this
# shell; OpenRLHF starts a local Ray instance whose workers inherit this environment (WIDESEEK_TRAIN_CONFIG,
# judge keys, HF_TOKEN), so no secret goes on a command line. Re-running the same command resumes from the
# newest checkpoint under CKPT_DIR. DRY_RUN=1 prints the command and exits. See docs/training.md for all knobs.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=common.sh
source "$REPO_ROOT/training/launch/common.sh"

GPUS=${GPUS:-8}
if (( GPUS % VLLM_TP != 0 )); then
  echo "error: GPUS ($GPUS) must be a multiple of VLLM_TP ($VLLM_TP)" >&2
  exit 2
fi
WIDESEEK_ARGS+=(
  --actor.num_nodes 1 --actor.num_gpus_per_node "$GPUS"
  --ref.num_nodes 1 --ref.num_gpus_per_node "$GPUS"
  --vllm.num_engines "$((GPUS / VLLM_TP))"
  --train.colocate_all --vllm.enable_sleep --ds.enable_sleep
)
wideseek_append_extra_args
CMD=(python3 -m training.openrlhf_ext.train "${WIDESEEK_ARGS[@]}")

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  wideseek_print_command "${CMD[@]}"
  exit 0
fi
if [[ -z "${WIDESEEK_TRAIN_CONFIG:-}" ]]; then
  echo "warning: WIDESEEK_TRAIN_CONFIG is not set: rollouts use the graph's defaults (search=local needs a corpus)" >&2
fi
mkdir -p "$OUT_DIR" "$CKPT_DIR" "$LOG_DIR"
cd "$REPO_ROOT"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
trap wideseek_stop_refresher EXIT
wideseek_start_refresher
{ echo "# $(date -u +%FT%TZ)"; wideseek_print_command "${CMD[@]}"; } >> "$OUT_DIR/command.log"
"${CMD[@]}" 2>&1 | tee -a "$OUT_DIR/train.log"
