#!/usr/bin/env bash
# WideSeek-R1 multi-agent GRPO on a Ray cluster of several machines.
#
# 1. Start Ray on every machine (same Python environment and CUDA stack everywhere):
#      head:    ray start --head --port 6379 --dashboard-host 0.0.0.0
#      workers: ray start --address HEAD_IP:6379
# 2. Put TRAIN_DATA, the executor settings (WIDESEEK_TRAIN_CONFIG, and the corpus it names) and OUT_DIR on
#    storage that every machine sees at the same path.
# 3. From any machine that reaches the dashboard:
#      RAY_ADDRESS=http://HEAD_IP:8265 NODES=4 GPUS_PER_NODE=8 MODEL=... TRAIN_DATA=/shared/hybrid.jsonl \
#        OUT_DIR=/shared/runs/wideseek WIDESEEK_TRAIN_CONFIG=/shared/train.json training/launch/train_multi_node.sh
#
# The repository is shipped to the cluster as the job's working directory. Environment variables named in
# PASS_ENV (default: every WIDESEEK_* variable, HF_TOKEN, WANDB_API_KEY) reach the workers through a runtime-env
# file readable only by you, never through the command line. Re-submitting resumes from OUT_DIR/ckpt.
# DRY_RUN=1 prints the submission and exits.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${RAY_ADDRESS:?set RAY_ADDRESS to the Ray dashboard, e.g. http://HEAD_IP:8265}"
: "${OUT_DIR:?set OUT_DIR to a folder on storage shared by every machine (checkpoints, logs, final model)}"
# the working directory is unpacked on every machine: the agent file is addressed relative to it
AGENT_FILE=${AGENT_FILE:-training/agent_executor.py}
# shellcheck source=common.sh
source "$REPO_ROOT/training/launch/common.sh"

NODES=${NODES:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TOTAL=$((NODES * GPUS_PER_NODE))
if (( TOTAL % VLLM_TP != 0 )); then
  echo "error: NODES x GPUS_PER_NODE ($TOTAL) must be a multiple of VLLM_TP ($VLLM_TP)" >&2
  exit 2
fi
WIDESEEK_ARGS+=(
  --actor.num_nodes "$NODES" --actor.num_gpus_per_node "$GPUS_PER_NODE"
  --ref.num_nodes "$NODES" --ref.num_gpus_per_node "$GPUS_PER_NODE"
  --vllm.num_engines "$((TOTAL / VLLM_TP))"
  --train.colocate_all --vllm.enable_sleep --ds.enable_sleep
)
wideseek_append_extra_args

RUNTIME_ENV=$(mktemp "${TMPDIR:-/tmp}/wideseek-runtime-env.XXXXXX")
chmod 600 "$RUNTIME_ENV"
trap 'rm -f "$RUNTIME_ENV"; wideseek_stop_refresher' EXIT
PASS_ENV=${PASS_ENV:-HF_TOKEN WANDB_API_KEY} python3 - "$RUNTIME_ENV" <<'PY'
import json, os, sys
names = set(os.environ.get("PASS_ENV", "").split())
env = {k: v for k, v in os.environ.items() if k in names or k.startswith("WIDESEEK_")}
spec = {"env_vars": env,
        "excludes": [".git/", "out/", ".whl/", ".device/", "**/__pycache__/", "*.safetensors", "*.bin"]}
with open(sys.argv[1], "w") as f:
    json.dump(spec, f)  # JSON is YAML: ray job submit --runtime-env reads it
PY

CMD=(ray job submit --address "$RAY_ADDRESS" --working-dir "$REPO_ROOT" --runtime-env "$RUNTIME_ENV"
     --submission-id "${SUBMISSION_ID:-$RUN_NAME-$(date +%Y%m%d-%H%M%S)}"
     -- python3 -m training.openrlhf_ext.train "${WIDESEEK_ARGS[@]}")

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  wideseek_print_command "${CMD[@]}"
  exit 0
fi
mkdir -p "$OUT_DIR"
{ echo "# $(date -u +%FT%TZ)"; wideseek_print_command "${CMD[@]}"; } >> "$OUT_DIR/command.log"
wideseek_start_refresher
"${CMD[@]}"
