#!/usr/bin/env bash
# Issue 10's run on a GPU machine: training/launch/train_single_node.sh itself, unmodified, with its documented
# variables scaled down (scripts/gpu/launch_smoke.env), under OpenRLHF's Ray driver with the WideSeek extension,
# ZeRO-3, and OpenRLHF's weight broadcast into rollout engines; then tests/gpu/check_launch.py. From the
# repository root, with .device/ from scripts/gpu/fetch_launch.sh carried along:
#   bash scripts/gpu/launch_smoke.sh              # one GPU (nvidia-h200): actor, reference and engine colocated
#   GPUS=2 bash scripts/gpu/launch_smoke.sh       # nvidia-h200-x2: ZeRO-3 over 2 ranks, 2 engines, IPC from both
# Stand-ins, for this run only (PYTHONPATH): vLLM (tests/gpu/vllm_shim over training.hf_engine.HFEngine) and the
# flash-attn kernels (tests/gpu/flash_attn_shim). Everything else is the real code.
# Writes to $OUT (default /tmp/launch-out): results.json, log.txt (trimmed), full.log.gz, debug.tgz (the evidence
# the check read) and, when something failed, ray_logs.tgz. Exit code: the check's (0 = every check passed).
# BUDGET (default 540 s) bounds the whole script: the launch gets what install and prep leave, minus 40 s.
# SKIP_INSTALL=1 skips installing the carried wheels (a machine that has the stack, e.g. the CPU rehearsal).
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
OUT=${OUT:-/tmp/launch-out}
WORK=${WORK:-/tmp/launch}
BUDGET=${BUDGET:-540}
MODEL_SRC=${MODEL_SRC:-.device/launch/model}
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK"
LOG=$WORK/full.log
exec > >(tee -a "$LOG") 2>&1
T0=$(date +%s)
stage() { echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
export PYTHONUNBUFFERED=1
# NVLink multicast stays off on the shared multi-GPU hosts (device notes); harmless on one GPU
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export TORCH_CUDA_ARCH_LIST=9.0   # DeepSpeed's JIT ops (FusedAdam) for the H200; it cannot parse torch's "9.0a"
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0   # Ray on loopback: one node, and the machine has no network
export RAY_USAGE_STATS_ENABLED=0 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=1   # the HF engine's thread otherwise competes with torch's CPU pool (docs/training.md)

finish() {   # always leave results behind, whatever failed
  local rc=$1 launch_rc=${2:-}
  stage "check (launch exit code ${launch_rc:-none})"
  PYTHONPATH="$REPO/tests/gpu/vllm_shim:$REPO/tests/gpu/flash_attn_shim:/tmp/site:$REPO" python3 tests/gpu/check_launch.py \
    --run "$WORK/run" --debug "$WORK/debug" --log "$LOG" --out "$OUT/results.json" --prep "$WORK/prep.json" \
    ${launch_rc:+--exit-code "$launch_rc"} ${LAUNCH_WALL:+--wall "$LAUNCH_WALL"} --trimmed-log "$OUT/log.txt" \
    --env "GPUS=$GPUS" --env "GROUP=${GROUP:-}" --env "TASKS_PER_STEP=${TASKS_PER_STEP:-}" \
    --env "STEPS=${STEPS:-}" --env "LR=${LR:-}" --env "MAX_LEN=${MAX_LEN:-}" \
    --env "TRAIN_TOKENS_PER_GPU=${TRAIN_TOKENS_PER_GPU:-}" --env "EXTRA_ARGS=${EXTRA_ARGS:-}" \
    --env "ZERO_STAGE=${ZERO_STAGE:-3 (script default)}" --env "MODEL_SRC=$MODEL_SRC"
  local check_rc=$?
  (cd "$WORK" && tar czf "$OUT/debug.tgz" debug prep.json rollout.json run/command.log 2>/dev/null)
  if (( rc != 0 || check_rc != 0 )) && [[ -d /tmp/ray/session_latest/logs ]]; then
    tar czf "$OUT/ray_logs.tgz" -C /tmp/ray/session_latest logs --exclude='*.log.[0-9]*' 2>/dev/null
  fi
  stage "done: check exit code $check_rc"
  gzip -c "$LOG" > "$OUT/full.log.gz"
  exit $(( check_rc != 0 ? check_rc : rc ))
}

export GPUS=${GPUS:-1}
stage "machine"
nvidia-smi -L
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
echo "cores $(nproc)"; free -g | head -2; df -h /tmp | tail -1

if [[ "${SKIP_INSTALL:-0}" == 1 ]]; then   # a machine that already has the stack (the CPU rehearsal)
  stage "install skipped (SKIP_INSTALL=1)"
else
  stage "install (scripts/gpu/install.sh)"
  if ! bash scripts/gpu/install.sh; then echo "ERROR: install failed"; finish 1; fi
fi
export PYTHONPATH=/tmp/site
# DeepSpeed builds FusedAdam on first use (tens of seconds); start that build now, beside data prep and Ray's
# start, into the cache the policy actor will read (torch's extension cache, file-locked while building)
( python3 -c "from deepspeed.ops.op_builder import FusedAdamBuilder; FusedAdamBuilder().load()" \
    > "$WORK/fused_adam_build.log" 2>&1; echo "=== FusedAdam prebuild exit code $? (log $WORK/fused_adam_build.log)" ) &
PREBUILD=$!

stage "prep (tests/gpu/launch_prep.py)"
source scripts/gpu/launch_smoke.env
PREP_ARGS=(--work "$WORK" --tasks $(( TASKS_PER_STEP * STEPS )))
[[ -d "$MODEL_SRC" ]] && PREP_ARGS+=(--model "$MODEL_SRC") || echo "WARNING: no $MODEL_SRC: random-init model"
if ! PYTHONPATH="/tmp/site:$REPO" python3 tests/gpu/launch_prep.py "${PREP_ARGS[@]}"; then
  echo "ERROR: prep failed"; finish 1
fi

export PYTHONPATH="$REPO/tests/gpu/vllm_shim:$REPO/tests/gpu/flash_attn_shim:/tmp/site"
export WIDESEEK_DEBUG_DIR="$WORK/debug"
LAUNCH_LIMIT=$(( BUDGET - ($(date +%s) - T0) - 40 ))
stage "launch: training/launch/train_single_node.sh (time limit ${LAUNCH_LIMIT} s)"
DRY_RUN=1 bash training/launch/train_single_node.sh
L0=$(date +%s)
timeout -k 20 "$LAUNCH_LIMIT" bash training/launch/train_single_node.sh
launch_rc=$?
LAUNCH_WALL=$(( $(date +%s) - L0 ))
(( launch_rc == 124 )) && echo "WARNING: the launch hit its ${LAUNCH_LIMIT} s limit"
python3 -m ray.scripts.scripts stop --force > /dev/null 2>&1 || true   # Ray processes a timeout left behind
wait "$PREBUILD"   # (a bare `wait` would also wait for the log's tee, forever)
finish "$launch_rc" "$launch_rc"
