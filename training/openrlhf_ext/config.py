"""Which OpenRLHF 0.11.2 settings the multi-agent extension supports, checked up front.

Runs on OpenRLHF's own parsed, hierarchised arguments (``args.train.batch_size`` ...): in the
driver (training.openrlhf_ext.train) before Ray starts anything, and again inside the trainer
actor so a job launched some other way fails with the same message.
"""

from __future__ import annotations

from typing import Any

from .errors import ExtensionConfigError


def _get(args: Any, dotted: str, default: Any = None) -> Any:
    node = args
    for part in dotted.split("."):
        node = getattr(node, part, None)
        if node is None:
            return default
    return node


def config_problems(args: Any) -> list[str]:
    """Every incompatibility, each as one actionable sentence (empty: all good)."""
    problems: list[str] = []
    if not _get(args, "train.agent_func_path"):
        problems.append(
            "--train.agent_func_path is required (the WideSeek AgentExecutor file produces the rows)"
        )
    if _get(args, "algo.advantage.estimator") != "group_norm":
        problems.append(
            "--algo.advantage.estimator must be group_norm (GRPO); got "
            f"{_get(args, 'algo.advantage.estimator')!r}"
        )
    n = _get(args, "rollout.n_samples_per_prompt", 1)
    if n < 2:
        problems.append("--rollout.n_samples_per_prompt must be > 1 (GRPO needs a group; the paper uses 8)")
    if not _get(args, "train.dynamic_batch_enable", False):
        problems.append(
            "--train.dynamic_batch_enable is required: it is the replay-buffer path whose optimizer-step "
            "boundaries the extension controls (one step per rollout batch, rows of any count)"
        )
    if _get(args, "algo.kl.init_coef", 0.0) > 0 and not _get(args, "algo.kl.use_loss", False):
        problems.append(
            "--algo.kl.use_loss is required when --algo.kl.init_coef > 0: KL as a reward term would be "
            "added per row, breaking one reward per rollout (the paper uses KL 0.001 as a loss, k3)"
        )
    if _get(args, "actor.loss_agg_mode", "token-mean") != "token-mean":
        problems.append(
            "--actor.loss_agg_mode must be token-mean (the dual-level weights are folded into it)"
        )
    if _get(args, "actor.policy_loss_type", "ppo") != "ppo":
        problems.append(
            "--actor.policy_loss_type must be ppo (GSPO's sequence ratio ignores per-token weights)"
        )
    if _get(args, "reward.overlong_buffer_len") is not None:
        problems.append(
            "--reward.overlong_buffer_len is per row; the WideSeek reward has its own length penalty"
        )
    if _get(args, "reward.stop_properly_penalty_coef") is not None:
        problems.append(
            "--reward.stop_properly_penalty_coef is per row; it cannot apply to a per-rollout reward"
        )
    if _get(args, "train.async_enable", False):
        problems.append("--train.async_enable is not supported (its sample queue is not task-group aware)")
    rb = _get(args, "rollout.batch_size")
    gen = _get(args, "rollout.vllm_generate_batch_size")
    if gen not in (None, rb):
        problems.append("--rollout.vllm_generate_batch_size must equal --rollout.batch_size (or be unset)")
    tb = _get(args, "train.batch_size")
    if rb is not None and tb is not None and tb != rb * n:
        problems.append(
            f"--train.batch_size must be --rollout.batch_size x --rollout.n_samples_per_prompt = {rb * n} "
            f"(got {tb}): OpenRLHF derives the scheduler's step count from it, and the extension takes "
            "exactly one optimizer step per rollout batch"
        )
    if _get(args, "ds.ring_attn_size", 1) != 1 or _get(args, "ds.tensor_parallel_size", 1) != 1:
        problems.append(
            "ring attention / DeepSpeed tensor parallelism are not supported by the extension yet"
        )
    return problems


def validate_args(args: Any) -> None:
    problems = config_problems(args)
    if problems:
        raise ExtensionConfigError(
            "OpenRLHF flags incompatible with WideSeek multi-agent training:\n  - " + "\n  - ".join(problems)
        )
