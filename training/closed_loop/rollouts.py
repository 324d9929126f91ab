"""Rollouts through OpenRLHF's path, unmodified: ``AgentExecutor.execute`` -> the in-actor endpoint -> the
WideSeek graph -> an engine (the HF engine, or the scripted player for SFT data).

:func:`run_rollouts` runs ``samples`` rollouts of each task concurrently, as OpenRLHF's rollout actor does,
and returns per rollout its training rows and the official scores of its answer: the WideSeek-R1 reward
(``langgraph_wideseek.eval.reward.compute_reward``, benchmark mode: each column's own WideSearch metric, no
judge model) and the WideSearch item F1, row F1 and success of the same trial.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from training.agent_executor import AgentExecutor
from training.data import TaskLabel
from training.engine import SamplingParamsLite
from training.reward import RewardSettings
from training.rollout import ExecutorSettings

log = logging.getLogger("training.closed_loop")

SCORE_KEYS = ("reward", "item_f1", "row_f1", "success", "format_bonus", "access_bonus", "length_penalty")


@dataclass
class Rollout:
    task: int  # index into the task list given to run_rollouts
    sample: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # execute raised: the rollout produced nothing (reported, never trained on)

    @property
    def rollout_id(self) -> str | None:
        return self.rows[0]["wideseek"]["rollout_id"] if self.rows else None


class ScoredReward:
    """The executor's reward function: the official WideSeek-R1 reward, with the trial's row F1 and success
    kept as extra parts so every row logs them (``extra_logs["reward_row_f1"]`` and so on)."""

    async def __call__(self, result: Any, label: TaskLabel) -> tuple[float, dict[str, float]]:
        from langgraph_wideseek.eval import ExactJudge
        from langgraph_wideseek.eval.reward import compute_reward, task_from_label

        task = task_from_label(label)  # cached per label: a group's rollouts share one scorer task
        out = await compute_reward(result, task, judge=ExactJudge(), mode="benchmark")
        trial = out.trial
        parts = {
            "item_f1": out.item_f1,
            "format_bonus": out.format_bonus,
            "access_bonus": out.access_bonus,
            "length_penalty": out.length_penalty,
            "row_f1": float(trial.row_f1) if trial is not None and trial.status == "ok" else 0.0,
            "success": float(trial.success) if trial is not None and trial.status == "ok" else 0.0,
        }
        return out.total, parts


def make_executor(graph: dict[str, Any]) -> AgentExecutor:
    settings = ExecutorSettings(
        graph=graph, reward=RewardSettings(mode="benchmark", judge="exact"), on_rollout_error="raise"
    )
    executor = AgentExecutor(settings)
    executor.runner.reward.function = ScoredReward()
    return executor


def openrlhf_sampling(
    max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0
) -> SamplingParamsLite:
    """The sampling params OpenRLHF 0.11.2's SamplesGenerator hands an agent executor."""
    return SamplingParamsLite(
        temperature=temperature,
        top_p=top_p,
        top_k=-1,
        max_tokens=max_new_tokens,
        min_tokens=1,
        skip_special_tokens=False,
        logprobs=None,
    )


async def run_rollouts(
    executor: AgentExecutor,
    engine: Any,
    tokenizer: Any,
    records: list[dict[str, str]],
    *,
    samples: int,
    max_len: int,
    sampling: Any,
    concurrency: int,
) -> list[Rollout]:
    """``samples`` rollouts of every record, at most ``concurrency`` at once; never raises for one rollout."""
    gate = asyncio.Semaphore(concurrency)

    async def one(ti: int, si: int) -> Rollout:
        ro = Rollout(ti, si)
        rec = records[ti]
        async with gate:
            try:
                ro.rows = await executor.execute(
                    rec["prompt"], rec["label"], sampling, max_len, tokenizer, engine
                )
            except Exception as e:  # noqa: BLE001 - reported per rollout, and counted by the caller
                ro.error = f"{type(e).__name__}: {e}"
                log.warning("rollout of task %s sample %d failed: %s", rec.get("instance_id"), si, ro.error)
                return ro
        if ro.rows:
            logs = ro.rows[0]["extra_logs"]
            ro.scores = {"reward": float(ro.rows[0]["reward"])}
            ro.scores.update({k: float(logs.get(f"reward_{k}", 0.0)) for k in SCORE_KEYS if k != "reward"})
            for k in (
                "subagents",
                "failed_subagents",
                "lead_failed",
                "model_calls",
                "longest_generation",
                "truncated_calls",
                "context_rejections",
                "used_access",
            ):
                ro.scores[k] = float(logs.get(k, 0.0))
        else:
            ro.error = "the rollout produced no model call"
        return ro

    t0 = time.perf_counter()
    out = await asyncio.gather(*[one(ti, si) for ti in range(len(records)) for si in range(samples)])
    log.info("%d rollouts in %.1f s", len(out), time.perf_counter() - t0)
    return list(out)
