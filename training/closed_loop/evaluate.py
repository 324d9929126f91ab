"""Held-out measurement: run a model through the whole rollout path on tasks it never saw and score the
answers with the official WideSearch scorer; mean over samples per task, then over tasks, with a 95% bootstrap
interval over tasks (tasks are the unit that varies; samples of one task are not independent)."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

from .config import LoopConfig
from .rollouts import SCORE_KEYS, Rollout, make_executor, openrlhf_sampling, run_rollouts
from .tasks import Split, executor_graph_settings

METRICS = ("item_f1", "row_f1", "success", "reward")


def load_policy(path: str | Path, cfg: LoopConfig) -> Any:
    """A saved checkpoint as the rollout engine runs it: bf16 on a GPU (as vLLM serves it), fp32 on a CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if cfg.device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, attn_implementation="sdpa")
    return model.to(cfg.device).eval()


def bootstrap_ci(values: list[float], *, draws: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of the mean, resampling ``values`` (one per task) with replacement."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choice(values) for _ in range(n)) / n for _ in range(draws))
    return (means[int(0.025 * draws)], means[min(draws - 1, int(0.975 * draws))])


def summarize(rollouts: list[Rollout], n_tasks: int, *, draws: int, seed: int) -> dict[str, Any]:
    """Per-task means of each metric (a failed rollout scores 0, and counts), then their mean over tasks."""
    per_task: list[dict[str, float]] = []
    for ti in range(n_tasks):
        mine = [r for r in rollouts if r.task == ti]
        per_task.append(
            {k: statistics.fmean(r.scores.get(k, 0.0) for r in mine) if mine else 0.0 for k in SCORE_KEYS}
        )
    out: dict[str, Any] = {
        "tasks": n_tasks,
        "rollouts": len(rollouts),
        "failed_rollouts": sum(r.error is not None for r in rollouts),
        "failure_reasons": sorted({r.error for r in rollouts if r.error})[:10],
    }
    for k in METRICS:
        vals = [t[k] for t in per_task]
        out[k] = statistics.fmean(vals) if vals else float("nan")
        out[f"{k}_ci95"] = list(bootstrap_ci(vals, draws=draws, seed=seed))
        out[f"{k}_se"] = statistics.stdev(vals) / len(vals) ** 0.5 if len(vals) > 1 else float("nan")
    for k in ("format_bonus", "access_bonus", "length_penalty"):
        out[k] = statistics.fmean(t[k] for t in per_task) if per_task else float("nan")
    scored = [r for r in rollouts if r.scores]
    for k in (
        "subagents",
        "failed_subagents",
        "lead_failed",
        "model_calls",
        "longest_generation",
        "truncated_calls",
    ):
        out[f"mean_{k}"] = statistics.fmean(r.scores.get(k, 0.0) for r in scored) if scored else float("nan")
    out["per_task_item_f1"] = [t["item_f1"] for t in per_task]
    return out


async def evaluate(
    cfg: LoopConfig, model: Any, tokenizer: Any, split: Split, *, tasks: int, samples: int, seed: int
) -> dict[str, Any]:
    """``samples`` rollouts of the first ``tasks`` tasks of ``split`` with ``model`` behind an HF engine."""
    from training.hf_engine import HFEngine

    records = split.rows(split.tasks[:tasks])
    engine = HFEngine(model, tokenizer, max_model_len=cfg.max_len, seed=seed)
    executor = make_executor(executor_graph_settings(cfg, split))
    t0 = time.perf_counter()
    try:
        rollouts = await run_rollouts(
            executor,
            engine,
            tokenizer,
            records,
            samples=samples,
            max_len=cfg.max_len,
            sampling=openrlhf_sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p),
            concurrency=cfg.rollout_concurrency,
        )
    finally:
        await executor.aclose()
        engine.close()
    out = summarize(rollouts, len(records), draws=cfg.bootstrap, seed=seed)
    out["seconds"] = time.perf_counter() - t0
    out["engine"] = engine.stats.as_dict()
    out["split"] = split.name
    out["task_ids"] = [r["instance_id"] for r in records]
    out["samples"] = samples
    return out


def evaluate_sync(
    cfg: LoopConfig, model: Any, tokenizer: Any, split: Split, *, tasks: int, samples: int, seed: int
) -> dict[str, Any]:
    return asyncio.run(evaluate(cfg, model, tokenizer, split, tasks=tasks, samples=samples, seed=seed))
