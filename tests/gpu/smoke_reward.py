"""The launch smoke run's reward: the official WideSeek-R1 reward (exact matching) plus a small shaped term.

A tiny policy fine-tuned for a few minutes on a CPU rarely gets a table cell right, so the official reward
alone is 0 for every rollout and every GRPO advantage is 0: the run would then show nothing about whether the
advantages reaching the trainer are right. The shaped term rewards the multi-agent behaviour the rollouts
actually vary in (subagents spawned, a final table, a clean finish), so the rewards of one task's rollouts
differ. It is passed through the documented ``reward.function`` setting of ``WIDESEEK_TRAIN_CONFIG``.
"""

from __future__ import annotations

from typing import Any


async def reward(result: Any, label: Any) -> tuple[float, dict[str, float]]:
    from langgraph_wideseek.eval.judge import ExactJudge
    from langgraph_wideseek.eval.reward import compute_reward, task_from_label

    official = await compute_reward(result, task_from_label(label), judge=ExactJudge(), mode="benchmark")
    subagents = len(result.trajectory.subagents) if result.trajectory is not None else 0
    shaped = (
        0.1 * min(subagents, 4) + 0.2 * float(result.table is not None) + 0.05 * float(result.status == "ok")
    )
    return official.total + shaped, {
        "official": float(official.total),
        "shaped": shaped,
        "subagents": float(subagents),
    }
