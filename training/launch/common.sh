# Shared by train_single_node.sh and train_multi_node.sh: the WideSeek-R1 recipe as OpenRLHF 0.11.2 flags.
# Source it after setting REPO_ROOT; it fills the array WIDESEEK_ARGS. Every default can be overridden by an
# environment variable of the same name; EXTRA_ARGS (a string, split on spaces) is appended last, after the
# scripts' own GPU-layout flags too (wideseek_append_extra_args), so a flag given there wins over every default
# (argparse keeps the last value).

: "${MODEL:?set MODEL to the base model (a Hugging Face id or a local path), e.g. MODEL=Qwen/Qwen3-4B}"
: "${TRAIN_DATA:?set TRAIN_DATA to a prompt dataset built by python -m training.data (.jsonl or .parquet)}"

# --- the paper's hyper-parameters (spec wideseek-r1.md section 6) ------------------------------------------
GROUP=${GROUP:-8}                     # rollouts per task (GRPO group)
TASKS_PER_STEP=${TASKS_PER_STEP:-128} # tasks per optimizer step
LR=${LR:-1e-6}                        # constant learning rate
KL_COEF=${KL_COEF:-0.001}             # KL as a loss term, k3 estimator
CLIP_LOW=${CLIP_LOW:-0.2}
CLIP_HIGH=${CLIP_HIGH:-0.28}
DUAL_CLIP=${DUAL_CLIP:-10}
TEMPERATURE=${TEMPERATURE:-1.0}       # same sampling for training and evaluation
TOP_P=${TOP_P:-1.0}
EPISODES=${EPISODES:-1}               # one pass over the tasks
MAX_LEN=${MAX_LEN:-32768}             # one agent's context: prompt + every generation of one call

# --- memory and throughput -----------------------------------------------------------------------------------
ZERO_STAGE=${ZERO_STAGE:-3}
TRAIN_TOKENS_PER_GPU=${TRAIN_TOKENS_PER_GPU:-32768}
ROLLOUT_TOKENS_PER_GPU=${ROLLOUT_TOKENS_PER_GPU:-65536}
VLLM_TP=${VLLM_TP:-1}
VLLM_MEM=${VLLM_MEM:-0.6}

# --- where things go ----------------------------------------------------------------------------------------
RUN_NAME=${RUN_NAME:-wideseek-grpo}
OUT_DIR=${OUT_DIR:-$REPO_ROOT/out/$RUN_NAME}
CKPT_DIR=${CKPT_DIR:-$OUT_DIR/ckpt}
SAVE_STEPS=${SAVE_STEPS:-10}
KEEP_CKPTS=${KEEP_CKPTS:-3}
LOG_DIR=${LOG_DIR:-$OUT_DIR/tensorboard}
AGENT_FILE=${AGENT_FILE:-$REPO_ROOT/training/agent_executor.py}

WIDESEEK_ARGS=(
  --actor.model_name_or_path "$MODEL"
  --train.agent_func_path "$AGENT_FILE"
  --data.prompt_dataset "$TRAIN_DATA"
  --data.input_key prompt
  --data.label_key label
  --data.max_len "$MAX_LEN"
  --rollout.n_samples_per_prompt "$GROUP"
  --rollout.batch_size "$TASKS_PER_STEP"
  --train.batch_size "$((TASKS_PER_STEP * GROUP))"
  --rollout.temperature "$TEMPERATURE"
  --rollout.top_p "$TOP_P"
  --train.num_episodes "$EPISODES"
  --train.max_epochs 1
  --algo.advantage.estimator group_norm
  --algo.kl.use_loss
  --algo.kl.estimator k3
  --algo.kl.init_coef "$KL_COEF"
  --actor.eps_clip_low_high "$CLIP_LOW" "$CLIP_HIGH"
  --actor.dual_clip "$DUAL_CLIP"
  --actor.adam.lr "$LR"
  --actor.lr_scheduler constant
  --actor.lr_warmup_ratio 0
  --ds.param_dtype bf16
  --ds.zero_stage "$ZERO_STAGE"
  --ds.packing_samples
  --actor.gradient_checkpointing_enable
  --train.dynamic_batch_enable
  --train.max_tokens_per_gpu "$TRAIN_TOKENS_PER_GPU"
  --rollout.max_tokens_per_gpu "$ROLLOUT_TOKENS_PER_GPU"
  --vllm.tensor_parallel_size "$VLLM_TP"
  --vllm.gpu_memory_utilization "$VLLM_MEM"
  --vllm.enable_prefix_caching
  --ckpt.path "$CKPT_DIR"
  --ckpt.output_dir "$OUT_DIR/final"
  --ckpt.save_hf
  --ckpt.save_steps "$SAVE_STEPS"
  --ckpt.max_num "$KEEP_CKPTS"
  --ckpt.load_enable
  --logger.logging_steps 1
  --logger.tensorboard_dir "$LOG_DIR"
)
if [[ -n "${EVAL_DATA:-}" ]]; then
  WIDESEEK_ARGS+=(--eval.dataset "$EVAL_DATA" --eval.steps "${EVAL_STEPS:-20}"
                  --eval.temperature "$TEMPERATURE" --eval.n_samples_per_prompt "${EVAL_SAMPLES:-4}")
fi
if [[ -n "${WANDB_API_KEY:-}" && "${WANDB:-0}" == 1 ]]; then
  # OpenRLHF prints its arguments, so the key never goes on the command line. Its W&B logger logs in with the
  # flag's value only when wandb has no key of its own, and wandb reads WANDB_API_KEY from the environment
  # (exported here, and passed to Ray workers by the multi-node script): the flag just switches W&B on.
  export WANDB_API_KEY
  WIDESEEK_ARGS+=(--logger.wandb.key "env:WANDB_API_KEY" --logger.wandb.project "${WANDB_PROJECT:-wideseek}"
                  --logger.wandb.run_name "$RUN_NAME")
fi
# EXTRA_ARGS (split on spaces) goes after every flag a script adds, so that its flags win (argparse keeps the
# last value). Each script calls this once its own flags (GPU layout, colocation) are in WIDESEEK_ARGS.
wideseek_append_extra_args() {
  if [[ -n "${EXTRA_ARGS:-}" ]]; then
    local _extra
    read -r -a _extra <<< "$EXTRA_ARGS"
    WIDESEEK_ARGS+=("${_extra[@]}")
  fi
}

# Print a command with secrets masked (for DRY_RUN=1 and the log).
wideseek_print_command() {
  local out=() prev=""
  for a in "$@"; do
    # Defence in depth: a key passed by hand through EXTRA_ARGS is still masked.
    if [[ "$prev" == "--logger.wandb.key" && "$a" != env:* ]]; then out+=("***"); else out+=("$a"); fi
    prev="$a"
  done
  printf '%q ' "${out[@]}"
  printf '\n'
}

# Start the external-server refresher (training.refresh) in the background when REFRESH_SERVER is set.
wideseek_start_refresher() {
  [[ -z "${REFRESH_SERVER:-}" ]] && return 0
  python3 -m training.refresh --server "$REFRESH_SERVER" --ckpt-path "$CKPT_DIR" --watch \
    --interval "${REFRESH_INTERVAL:-30}" >> "$OUT_DIR/refresh.log" 2>&1 &
  WIDESEEK_REFRESH_PID=$!
  echo "refreshing $REFRESH_SERVER from $CKPT_DIR (pid $WIDESEEK_REFRESH_PID, log $OUT_DIR/refresh.log)" >&2
}

wideseek_stop_refresher() {
  if [[ -n "${WIDESEEK_REFRESH_PID:-}" ]]; then kill "$WIDESEEK_REFRESH_PID" 2>/dev/null || true; fi
}
