"""The closed loop: the graph's rollouts from the current policy, trained on, and fed back, ``grpo_steps``
times.

Each step:

1. **rollouts**: ``tasks_per_step`` training tasks x ``group`` samples through the unmodified
   ``AgentExecutor.execute`` -> in-actor endpoint -> WideSeek graph -> :class:`~training.hf_engine.HFEngine`
   (bf16, the policy's current weights), scored with the official reward;
2. **rows -> trainer**: every rollout's rows stamped by the OpenRLHF extension (task group, sample, agent),
   converted to OpenRLHF ``Experience`` objects, then :func:`training.grpo_step.grpo_step`: old and reference
   log-probs, per-rollout GRPO advantages with the dual-level weights, the extension's replay buffer,
   OpenRLHF's ``PolicyLoss`` (clip 0.2 / 0.28, dual clip 10) and the k3 KL loss, one optimizer step under
   DeepSpeed ZeRO-3 in bf16 (OpenRLHF's ``Actor`` and ``DeepspeedStrategy``);
3. **weight sync**: every parameter gathered from its ZeRO-3 partitions the way OpenRLHF's
   ``broadcast_to_vllm`` gathers it (``deepspeed.zero.GatheredParameters``, one parameter at a time) and
   copied into the engine in place (:meth:`HFEngine.load_weights`, the engine paused meanwhile); then the
   engine's and the trainer's logits are compared on a fixed probe batch.

Measured at step 0: the engine's log-probs (recorded in the rows) against the trainer's recomputation on every
action token, and, to say what bf16 explains, the same recomputation by an fp32 copy of the same weights. Once
in the run (``checkpoint_step``) the trainer saves an HF checkpoint the way OpenRLHF does
(``--ckpt.save_hf``), ``training.refresh`` finds it complete, and a fresh engine loaded from it must produce
the synced engine's logits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import statistics
import time
from pathlib import Path
from typing import Any

from .config import LoopConfig
from .rollouts import Rollout, make_executor, openrlhf_sampling, run_rollouts
from .tasks import build_splits, executor_graph_settings

log = logging.getLogger("training.closed_loop")


def _zero3_gather(trainer: Any, param: Any) -> Any:
    """The context OpenRLHF's broadcast uses to see a whole parameter under ZeRO-3 (a no-op otherwise)."""
    import contextlib

    if trainer.kind == "deepspeed" and trainer.zero_stage == 3:
        import deepspeed

        return deepspeed.zero.GatheredParameters([param], enabled=True)
    return contextlib.nullcontext()


def sync_weights(trainer: Any, engine: Any) -> dict[str, float]:
    """Trainer -> engine, one gathered parameter at a time, with the engine paused."""
    import torch

    t0 = time.perf_counter()
    count = numel = 0
    with engine.paused():
        for name, param in trainer.hf.named_parameters():
            with _zero3_gather(trainer, param):
                engine.load_weights([(name, param.data)], drain=False)
                count += 1
                numel += param.data.numel()
    if str(engine.device).startswith("cuda"):
        torch.cuda.synchronize()
    return {"tensors": count, "parameters": numel, "seconds": time.perf_counter() - t0}


def probe_logits(model: Any, probe: list[list[int]], device: str) -> Any:
    """Logits (fp32) of a full forward of each probe sequence, concatenated."""
    import torch

    outs = []
    with torch.no_grad():
        for seq in probe:
            ids = torch.tensor([seq], device=device)
            outs.append(model(input_ids=ids).logits.float()[0])
    return torch.cat(outs)


def trainer_probe_logits(trainer: Any, probe: list[list[int]], device: str) -> Any:
    """The trainer's own forward (DeepSpeed's module; ZeRO-3 gathers parameters as it goes)."""
    import torch

    module = trainer.actor.model
    was_training = module.training
    module.eval()
    outs = []
    with torch.no_grad():
        for seq in probe:
            ids = torch.tensor([seq], device=device)
            outs.append(module(input_ids=ids).logits.float()[0])
    if was_training:
        module.train()
    return torch.cat(outs)


def logprob_agreement(full: Any) -> dict[str, Any]:
    """Engine (rollout) vs trainer (old) log-probs over every action token of a batch of experiences."""
    import torch

    mask = full.action_mask.bool()
    diff = (full.rollout_log_probs.float() - full.action_log_probs.float()).abs()
    per_row = [(diff[i][mask[i]].mean().item()) for i in range(diff.shape[0]) if mask[i].any()]
    d = diff[mask]
    return {
        "tokens": int(mask.sum()),
        "rows": len(per_row),
        "mean_abs": float(d.mean()),
        "max_abs": float(d.max()),
        "p99_abs": float(torch.quantile(d, 0.99)) if d.numel() > 1 else float(d.max()),
        "per_row_mean_abs": per_row,
    }


def fp32_agreement(full: Any, path: str, device: str) -> dict[str, float]:
    """The trainer's bf16 log-probs against an fp32 forward of the same weights: the size of bf16 rounding."""
    import torch
    from openrlhf.models import Actor
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").to(
        device
    )
    actor = Actor(model.eval())
    actor.packing_samples = False
    with torch.no_grad():
        lp = actor(
            full.sequences.to(device), full.action_mask.to(device), full.attention_mask.to(device)
        ).cpu()
    mask = full.action_mask.bool()
    vs_trainer = (full.action_log_probs.float() - lp)[mask].abs()
    vs_engine = (full.rollout_log_probs.float() - lp)[mask].abs()
    del model, actor
    return {
        "trainer_bf16_vs_fp32_mean_abs": float(vs_trainer.mean()),
        "trainer_bf16_vs_fp32_max_abs": float(vs_trainer.max()),
        "engine_vs_fp32_mean_abs": float(vs_engine.mean()),
        "engine_vs_fp32_max_abs": float(vs_engine.max()),
    }


def _experiences(rollouts: list[Rollout], max_len: int) -> tuple[list, list, dict[str, Any]]:
    """Rows of the step's rollouts -> stamped OpenRLHF experiences, grouped by task (GRPO groups)."""
    from training.openrlhf_ext.convert import row_to_experience
    from training.openrlhf_ext.rowmeta import stamp_rollout

    stamped = []
    kept = [r for r in rollouts if r.rows and r.error is None]
    for r in kept:
        stamped += stamp_rollout(r.rows, group=r.task, sample=r.sample)
    samples = [row_to_experience(row, st, max_len=max_len) for row, st in stamped]
    rows = [row for row, _ in stamped]
    info = {
        "rows": len(rows),
        "rollouts": len(kept),
        "dropped_rollouts": len(rollouts) - len(kept),
        "mean_response_tokens": statistics.fmean(
            len(r["observation_tokens"]) - r["action_ranges"][0][0] for r in rows
        )
        if rows
        else 0.0,
        "sequence_tokens": sum(len(r["observation_tokens"]) for r in rows),
    }
    return samples, [st for _, st in stamped], info


def _score_means(rollouts: list[Rollout]) -> dict[str, float]:
    scored = [r.scores for r in rollouts]
    keys = (
        "reward",
        "item_f1",
        "row_f1",
        "success",
        "format_bonus",
        "access_bonus",
        "length_penalty",
        "subagents",
        "failed_subagents",
        "lead_failed",
        "model_calls",
        "longest_generation",
        "truncated_calls",
    )
    return {k: statistics.fmean(s.get(k, 0.0) for s in scored) if scored else 0.0 for k in keys}


def run(cfg: LoopConfig, work: Path) -> dict[str, Any]:
    import torch
    from openrlhf.models import Actor
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.grpo_step import PolicyTrainer, grpo_step  # first: puts the flash-attn stand-in on the path
    from training.hf_engine import HFEngine
    from training.refresh import checkpoint_steps, weights_complete

    splits = build_splits(cfg, work)
    train_split = splits["train"]
    start = work / "sft" / "selected"
    tok = AutoTokenizer.from_pretrained(str(start))
    device = cfg.device
    gpu = device.startswith("cuda")
    trainer = PolicyTrainer(
        str(start),
        kind=cfg.trainer,
        lr=cfg.lr,
        device=device,
        steps=cfg.grpo_steps,
        max_tokens_per_gpu=cfg.max_tokens_per_gpu,
        zero_stage=cfg.zero_stage,
    )
    ref_model = (
        AutoModelForCausalLM.from_pretrained(
            str(start), dtype=torch.bfloat16 if gpu else torch.float32, attn_implementation="sdpa"
        )
        .to(device)
        .eval()
    )
    ref = Actor(ref_model)
    ref.packing_samples = False
    engine_model = (
        AutoModelForCausalLM.from_pretrained(
            str(start), dtype=torch.bfloat16 if gpu else torch.float32, attn_implementation="sdpa"
        )
        .to(device)
        .eval()
    )
    engine = HFEngine(engine_model, tok, max_model_len=cfg.max_len, seed=cfg.seed)
    executor = make_executor(executor_graph_settings(cfg, train_split))
    sampling = openrlhf_sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p)
    pool = train_split.rows(train_split.tasks[cfg.sft_tasks :] or train_split.tasks)
    rng = random.Random(cfg.seed + 7)
    probe: list[list[int]] = []
    steps: list[dict[str, Any]] = []
    syncs: list[float] = []
    out: dict[str, Any] = {"rl_task_pool": len(pool)}
    loop = asyncio.new_event_loop()
    started = time.perf_counter()
    out["stopped_by_time_budget"] = False
    try:
        for step in range(cfg.grpo_steps):
            if steps and time.perf_counter() - started > cfg.grpo_max_minutes * 60:
                # a command on the GPU machine has a hard time limit: stop between steps, keep the results
                out["stopped_by_time_budget"] = True
                log.info(
                    "grpo: time budget of %.1f min spent after %d steps", cfg.grpo_max_minutes, len(steps)
                )
                break
            t0 = time.perf_counter()
            records = rng.sample(pool, cfg.tasks_per_step)
            engine.reset_stats()
            rollouts = loop.run_until_complete(
                run_rollouts(
                    executor,
                    engine,
                    tok,
                    records,
                    samples=cfg.group,
                    max_len=cfg.max_len,
                    sampling=sampling,
                    concurrency=cfg.rollout_concurrency,
                )
            )
            t_rollout = time.perf_counter() - t0
            estats = engine.stats.as_dict()
            samples, stamps, info = _experiences(rollouts, cfg.max_len)
            if not samples:
                raise RuntimeError(
                    f"step {step}: no rollout produced rows: "
                    f"{sorted({r.error for r in rollouts if r.error})[:3]}"
                )
            if not probe:
                probe = [
                    list(map(int, s.sequences[0][s.attention_mask[0].bool()].tolist()))
                    for s in samples[: cfg.probe_rows]
                ]
            t1 = time.perf_counter()
            res = grpo_step(trainer, ref, samples, stamps, micro_rows=16, kl_coef=cfg.kl_coef)
            t_train = time.perf_counter() - t1
            folded, full = res.pop("_folded"), res.pop("_full")
            if step == 0:
                out["logprob_agreement_step0"] = logprob_agreement(full)
                out["logprob_agreement_step0"].update(fp32_agreement(full, str(start), device))
            t2 = time.perf_counter()
            sync = sync_weights(trainer, engine)
            t_sync = time.perf_counter() - t2
            diff = (
                probe_logits(engine.model, probe, device) - trainer_probe_logits(trainer, probe, device)
            ).abs()
            syncs.append(float(diff.max()))
            scores = _score_means(rollouts)
            rec = {
                "step": step,
                **{f"reward_{k}" if k != "reward" else "reward_mean": v for k, v in scores.items()},
                "reward_std": statistics.pstdev([r.scores.get("reward", 0.0) for r in rollouts]),
                "rollouts": len(rollouts),
                "failed_rollouts": sum(r.error is not None for r in rollouts),
                "rows": info["rows"],
                "rows_per_rollout": info["rows"] / max(1, info["rollouts"]),
                "response_length": info["mean_response_tokens"],
                "kl": res["kl_loss"],
                "policy_loss": res["policy_loss"],
                "clip_fraction": res["clip_ratio_mean"],
                "grad_norm": res["grad_norm"],
                "micro_batches": res["micro_batches"],
                "nonzero_advantage_groups": int(
                    sum(1 for g in _group_rewards(rollouts).values() if max(g) - min(g) > 1e-9)
                ),
                "engine_tokens_per_s": estats["tokens_per_second"],
                "engine_generated_tokens": estats["generated_tokens"],
                "engine_max_batch": estats["max_batch"],
                "trainer_tokens_per_s": info["sequence_tokens"] / t_train,
                "seconds_rollout": t_rollout,
                "seconds_train": t_train,
                "seconds_sync": t_sync,
                "seconds": time.perf_counter() - t0,
                "sync_logit_max_abs": syncs[-1],
                "sync_tensors": sync["tensors"],
                "advantage_rows": int(folded.row_advantage.ne(0).sum()),
                "peak_gpu_mem_gib": res.get("peak_gpu_mem_gib"),
            }
            steps.append(rec)
            log.info(
                "grpo step %d: %s",
                step,
                json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()}),
            )
            if step == cfg.checkpoint_step:
                out["checkpoint_reload"] = _checkpoint_roundtrip(
                    cfg, trainer, tok, engine, probe, work, step, checkpoint_steps, weights_complete
                )
        final = work / "grpo" / "final"
        _save_trainer(trainer, tok, final)
        out.update(
            {
                "steps": steps,
                "sync_logit_max_abs": syncs,
                "final_model": str(final),
                "model_parameters": sum(p.numel() for p in engine_model.parameters()),
            }
        )
    finally:
        loop.run_until_complete(executor.aclose())
        loop.close()
        engine.close()
    return out


def _group_rewards(rollouts: list[Rollout]) -> dict[int, list[float]]:
    groups: dict[int, list[float]] = {}
    for r in rollouts:
        if r.rows:
            groups.setdefault(r.task, []).append(float(r.rows[0]["reward"]))
    return groups


def _save_trainer(trainer: Any, tok: Any, path: Path) -> None:
    """An HF checkpoint of the trainer's weights, written as OpenRLHF's ``--ckpt.save_hf`` writes it."""
    if trainer.kind == "deepspeed":
        trainer.strategy.save_model(trainer.actor, tok, str(path))
    else:
        trainer.hf.save_pretrained(str(path))
        tok.save_pretrained(str(path))


def _checkpoint_roundtrip(
    cfg: LoopConfig,
    trainer: Any,
    tok: Any,
    engine: Any,
    probe: list[list[int]],
    work: Path,
    step: int,
    checkpoint_steps: Any,
    weights_complete: Any,
) -> dict[str, Any]:
    """Save -> the refresher's readiness check -> a fresh engine from the files -> same logits as the live
    one."""
    from training.hf_engine import HFEngine

    from .evaluate import load_policy

    ckpt_root = work / "grpo" / "ckpt"
    path = ckpt_root / f"global_step{step + 1}_hf"
    t0 = time.perf_counter()
    _save_trainer(trainer, tok, path)
    found = checkpoint_steps(ckpt_root)
    ready = bool(found) and found[-1][1] == path and weights_complete(path)
    fresh = HFEngine(load_policy(path, cfg), tok, max_model_len=cfg.max_len)
    try:
        diff = (
            probe_logits(fresh.model, probe, cfg.device) - probe_logits(engine.model, probe, cfg.device)
        ).abs()
    finally:
        fresh.close()
    return {
        "path": str(path),
        "found_by_refresh": ready,
        "logit_max_abs_vs_synced_engine": float(diff.max()),
        "seconds": time.perf_counter() - t0,
    }
