"""Evidence dumps for checking a real launch (``tests/gpu/check_launch.py``); off unless
``WIDESEEK_DEBUG_DIR``.

With ``WIDESEEK_DEBUG_DIR=/some/dir`` set in the driver's environment (single-node Ray workers inherit it),
the extension writes what a reviewer needs to check the multi-row training path from outside, without trusting
the code under test:

* ``rollouts.jsonl`` (samples generator, trainer actor): every row exactly as an ``execute`` returned it,
  before OpenRLHF touches it: task group, rollout, agent, turn, reward, generated tokens, and a key of its
  token ids.
* ``experience.jsonl`` (experience maker, trainer actor): per training step, every row with the advantage the
  extension put on its action tokens and the per-rollout GRPO advantage.
* ``actor_rank{R}.jsonl`` (each policy actor rank): per optimizer step, every row it trained on (by key) with
  the advantage values it saw in ``training_step``.
* ``probe_trainer_sync{K}.pt`` (policy rank 0, after the K-th weight broadcast) and
  ``probe_engine-{PID}_sync{K}.pt`` (each rollout engine, after receiving it): log-probs of a fixed probe
  batch and a digest of every weight, so the engine's weights and logits can be compared with the trainer's.

Every writer is best-effort: a failure is logged loudly and never stops training. Nothing here runs when the
variable is unset.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ENV = "WIDESEEK_DEBUG_DIR"
PROBE_SEED = 20251128
PROBE_SHAPE = (4, 24)
_lock = threading.Lock()


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def folder() -> Path:
    path = Path(os.environ[ENV])
    path.mkdir(parents=True, exist_ok=True)
    return path


def row_key(token_ids: Iterable[int]) -> str:
    """A key of a row's full token ids (prompt + generation), equal wherever the same row is seen."""
    return hashlib.sha1(",".join(str(int(t)) for t in token_ids).encode()).hexdigest()[:20]


def append_jsonl(name: str, records: Sequence[dict[str, Any]]) -> None:
    if not records:
        return
    with _lock, (folder() / name).open("a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def _guard(what: str, fn, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - evidence dumps must never break a training run
        logger.error("WIDESEEK_DEBUG_DIR: could not write %s:\n%s", what, traceback.format_exc())
        print(f"[wideseek-debug] ERROR writing {what}:\n{traceback.format_exc()}", flush=True)


# --- rows as executes returned them -------------------------------------------------------------------------
def dump_rollout_group(group: int, results: Sequence[Any], *, evaluation: bool = False) -> None:
    _guard("rollouts.jsonl", _dump_rollout_group, group, results, evaluation)


def _dump_rollout_group(group: int, results: Sequence[Any], evaluation: bool) -> None:
    records = []
    for sample, result in enumerate(results):
        rows = result if isinstance(result, list) else [result]
        for i, row in enumerate(rows):
            meta = row.get("wideseek") or {}
            records.append(
                {
                    "group": group,
                    "sample": sample,
                    "row": i,
                    "reward": float(row["reward"]),
                    "rollout_id": meta.get("rollout_id"),
                    "agent_id": meta.get("agent_id", "single"),
                    "role": meta.get("role"),
                    "turn": meta.get("turn", 0),
                    "num_agents": meta.get("num_agents", 1),
                    "agent_weight": meta.get("agent_weight", 1.0),
                    "agent_token_total": meta.get("agent_token_total"),
                    "generated_tokens": sum(int(e) - int(s) for s, e in row["action_ranges"]),
                    "tokens": len(row["observation_tokens"]),
                    "key": row_key(row["observation_tokens"]),
                    "eval": evaluation,
                    "pid": os.getpid(),
                    "time": time.time(),
                }
            )
    append_jsonl("rollouts.jsonl", records)


# --- what the experience maker assigned ---------------------------------------------------------------------
_experience_steps = 0


def dump_experience_batch(experiences: Sequence[Any], stamps: Sequence[Any]) -> None:
    global _experience_steps
    _experience_steps += 1
    _guard("experience.jsonl", _dump_experience_batch, _experience_steps, experiences, stamps)


def _rows_of(exp: Any) -> Iterable[tuple[int, list[int], list[float], int]]:
    """(row in batch, token ids, advantage values on action tokens, action tokens) of a padded Experience."""
    seq, att, mask, adv = exp.sequences, exp.attention_mask, exp.action_mask, exp.advantages
    for i in range(seq.shape[0]):
        ids = seq[i][att[i].bool()].tolist()
        m = mask[i].bool()
        values = adv[i][m].float().tolist() if adv is not None else []
        yield i, ids, values, int(m.sum().item())


def _dump_experience_batch(step: int, experiences: Sequence[Any], stamps: Sequence[Any]) -> None:
    records = []
    for exp in experiences:
        returns = exp.returns
        for i, ids, values, tokens in _rows_of(exp):
            st = stamps[int(exp.index[i])]
            m = exp.action_mask[i].bool()
            records.append(
                {
                    "step": step,
                    "position": int(exp.index[i]),
                    "group": st.group,
                    "sample": st.sample,
                    "agent_id": st.meta.agent_id,
                    "turn": st.meta.turn,
                    "num_agents": st.meta.num_agents,
                    "reward": float(exp.rewards[i].item()),
                    "action_tokens": tokens,
                    "key": row_key(ids),
                    "advantage_min": min(values) if values else None,
                    "advantage_max": max(values) if values else None,
                    "rollout_advantage": float(returns[i][m][0].item()) if tokens else None,
                }
            )
    append_jsonl("experience.jsonl", records)


# --- what each policy rank trained on -----------------------------------------------------------------------
def dump_actor_micro_batch(trainer: Any, step: int, experience: Any, *, rank: int | None = None) -> None:
    _guard("actor_rank*.jsonl", _dump_actor_micro_batch, trainer, step, experience, rank)


def _dump_actor_micro_batch(trainer: Any, step: int, experience: Any, rank: int | None) -> None:
    import torch.distributed as dist

    if rank is None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    if step == 0:  # the first micro-batch of a ppo_train call: a new optimizer step
        trainer._wideseek_debug_call = getattr(trainer, "_wideseek_debug_call", 0) + 1
    call = getattr(trainer, "_wideseek_debug_call", 0)
    last = (
        trainer.replay_buffer.dynamic_optimizer_step[step]
        if getattr(trainer.replay_buffer, "dynamic_optimizer_step", None)
        else None
    )
    records = [
        {
            "call": call,
            "micro_batch": step,
            "rank": rank,
            "key": row_key(ids),
            "action_tokens": tokens,
            "advantage_min": min(values) if values else None,
            "advantage_max": max(values) if values else None,
            "optimizer_step_ends": bool(last),
        }
        for _, ids, values, tokens in _rows_of(experience)
    ]
    append_jsonl(f"actor_rank{rank}.jsonl", records)


# --- weight-sync probes -------------------------------------------------------------------------------------
def probe_input_ids(vocab_size: int):
    """The fixed probe batch: PROBE_SHAPE token ids drawn with a fixed seed (identical on every machine)."""
    import torch

    g = torch.Generator().manual_seed(PROBE_SEED)
    return torch.randint(0, int(vocab_size), PROBE_SHAPE, generator=g)


def weights_digest(named: Iterable[tuple[str, Any]]) -> str:
    """SHA-256 over (name, dtype, shape, raw bytes) of each tensor, in the order given."""
    import torch

    h = hashlib.sha256()
    for name, t in named:
        t = t.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_trainer_probe(trainer: Any) -> None:
    """On every policy rank after ``broadcast_to_vllm`` (ZeRO-3 gathers are collective); rank 0 writes."""
    trainer._wideseek_syncs = getattr(trainer, "_wideseek_syncs", 0) + 1
    _guard(
        f"probe_trainer_sync{trainer._wideseek_syncs}.pt",
        _save_trainer_probe,
        trainer,
        trainer._wideseek_syncs,
    )


def _save_trainer_probe(trainer: Any, sync: int) -> None:
    import deepspeed
    import torch
    import torch.distributed as dist

    engine = trainer.actor.model  # the DeepSpeed engine
    model = engine.module  # the HF model, whose parameter names OpenRLHF broadcasts
    rank = dist.get_rank() if dist.is_initialized() else 0
    zero3 = trainer.strategy.args.ds.zero_stage == 3
    h = hashlib.sha256()
    t0 = time.perf_counter()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        with deepspeed.zero.GatheredParameters([p], enabled=zero3):
            if rank == 0:
                t = p.data.detach().contiguous().cpu()
                h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
                h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    ids = probe_input_ids(model.config.vocab_size).to(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    logprobs, forward_error = None, None
    try:
        with torch.no_grad():
            logits = engine(input_ids=ids).logits.float()  # the trainer's own forward (ZeRO-3: collective)
        logprobs = torch.log_softmax(logits, -1).cpu()
    except Exception:  # noqa: BLE001 - keep the weight digest, which is evidence on its own
        forward_error = traceback.format_exc()
        print(f"[wideseek-debug] trainer probe forward failed (sync {sync}):\n{forward_error}", flush=True)
    finally:
        if was_training:
            model.train()
    if rank == 0:
        torch.save(
            {
                "sync": sync,
                "side": "trainer",
                "digest": h.hexdigest(),
                "forward_error": forward_error,
                "logprobs": logprobs,
                "input_ids": ids.cpu(),
                "attn_implementation": getattr(model.config, "_attn_implementation", None),
                "dtype": str(next(model.parameters()).dtype),
                "zero_stage": trainer.strategy.args.ds.zero_stage,
                "seconds": time.perf_counter() - t0,
            },
            folder() / f"probe_trainer_sync{sync}.pt",
        )


def save_engine_probe(engine: Any, sync: int) -> None:
    """In a rollout engine (the vLLM shim) after the last tensor of a sync arrived."""
    _guard(f"probe_engine-{os.getpid()}_sync{sync}.pt", _save_engine_probe, engine, sync)


def _save_engine_probe(engine: Any, sync: int) -> None:
    import torch

    model = engine.hf.model
    digest = weights_digest(sorted(model.named_parameters(), key=lambda kv: kv[0]))
    ids = probe_input_ids(model.config.vocab_size).to(engine.device)
    serving = getattr(model.config, "_attn_implementation", None)
    trainer_attn = os.environ.get("WIDESEEK_PROBE_TRAINER_ATTN", "flash_attention_2")
    matched, matched_error = None, None
    with engine.hf.paused(), torch.no_grad():
        logits = model(input_ids=ids).logits.float()
        if trainer_attn and trainer_attn != serving:
            # the same forward with the trainer's attention implementation: with equal weights it must give
            # the
            # trainer's logits up to summation order, without the bf16 gap between two attention kernels
            try:
                model.config._attn_implementation = trainer_attn
                matched = torch.log_softmax(model(input_ids=ids).logits.float(), -1).cpu()
            except Exception as e:  # noqa: BLE001 - recorded; the serving-attention comparison still stands
                matched_error = f"{type(e).__name__}: {e}"
            finally:
                model.config._attn_implementation = serving
        # bf16's own noise floor on this probe: the same weights upcast to fp32. Two bf16 forwards of equal
        # weights through different kernels (DeepSpeed's ZeRO-3 linear vs F.linear) differ by about this much,
        # so the check compares the engine-trainer gap with it instead of a fixed tolerance.
        fp32 = copy.deepcopy(model).float()
        logprobs_fp32 = torch.log_softmax(fp32(input_ids=ids).logits.float(), -1).cpu()
        del fp32
    torch.save(
        {
            "sync": sync,
            "side": "engine",
            "digest": digest,
            "pid": os.getpid(),
            "logprobs": torch.log_softmax(logits, -1).cpu(),
            "input_ids": ids.cpu(),
            "logprobs_trainer_attention": matched,
            "logprobs_fp32": logprobs_fp32,
            "trainer_attention": trainer_attn,
            "trainer_attention_error": matched_error,
            "attn_implementation": serving,
            "dtype": str(next(model.parameters()).dtype),
            "device": str(engine.device),
            "calls": dict(engine.calls),
        },
        folder() / f"probe_engine-{os.getpid()}_sync{sync}.pt",
    )
