"""One GRPO training step on WideSeek rows, as OpenRLHF 0.11.2 plus this project's extension run it.

Shared by the GPU smoke run (``training.gpu_smoke.smoke``) and the closed RL loop (``training.closed_loop``):

* :class:`PolicyTrainer`: OpenRLHF's ``Actor`` with its optimizer, through OpenRLHF's ``DeepspeedStrategy``
  (ZeRO-2 or ZeRO-3, bf16, AdamW) or, on a CPU, a bf16 model with fp32 master weights and torch AdamW;
* :func:`grpo_step`: rows (already stamped and converted to OpenRLHF ``Experience`` objects) -> old and
  reference log-probs from forwards -> our per-rollout GRPO advantages with dual-level weights
  (``training.openrlhf_ext.assign``) -> our replay buffer's dynamic batching -> per micro-batch OpenRLHF's
  ``get_loss_batch_info``, ``PolicyLoss(0.2, 0.28, dual_clip=10)`` and the k3 KL loss, combined exactly as
  ``ActorPPOTrainer.training_step`` combines them -> one optimizer step;
* data parallelism: under ``torchrun`` every rank computes the batch's advantages and trains on the rows
  OpenRLHF's ``balance_experiences`` + ``async_run_method_batch`` give it (:func:`rank_share`).

OpenRLHF's model modules import ``flash_attn.bert_padding``; where flash-attn is not installed the pure-torch
stand-in kept in ``tests/training/stubs`` is put on the path (the GPU machines have no flash-attn either).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

REPO = Path(__file__).resolve().parents[1]
try:  # flash-attn cannot be installed without building it for CUDA; OpenRLHF only needs 5 helpers of it
    import flash_attn  # noqa: F401
except ImportError:
    sys.path.append(str(REPO / "tests" / "training" / "stubs"))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

KL_COEF = 0.001

__all__ = ["KL_COEF", "PolicyTrainer", "gather", "grpo_step", "rank_share", "world"]


def world() -> tuple[int, int]:
    """(rank, world size) as the launcher set them; (0, 1) when run as a plain process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (just ``[value]`` without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def rank_share(experiences: list) -> list:
    """The rows OpenRLHF 0.11.2's ``PPOTrainer.train_step`` hands this actor rank under dynamic batching.

    ``balance_experiences`` splits the batch into rows, sorts them by length and deals long and short rows out
    to ``num_nodes * num_gpus_per_node`` ranks (one Experience each); ``async_run_method_batch`` then gives
    rank r the r-th contiguous chunk of that list. Both are OpenRLHF's code or its formula, unchanged.
    """
    from openrlhf.trainer.ppo_utils.experience import balance_experiences

    rank, size = world()
    layout = NS(
        actor=NS(num_nodes=1, num_gpus_per_node=size), ds=NS(ring_attn_size=1, tensor_parallel_size=1)
    )
    shares = balance_experiences(experiences, layout)
    if len(shares) < size:  # async_run_method_batch refuses this too
        raise ValueError(f"{len(shares)} row batches for {size} data-parallel ranks")
    chunk = -(-len(shares) // size)
    return shares[rank * chunk : (rank + 1) * chunk]


def _flat_ds(params: list, fragment) -> torch.Tensor:
    """A full fp32 vector of a ZeRO-1/2 partitioned quantity (master weights or reduced gradient).

    Each rank fills its own fragments (``fragment(mapping, param)``) into zeros and one all-reduce assembles
    the vector; this is what DeepSpeed's ``safe_get_full_*`` helpers do per parameter, but with the collective
    outside any code that can fail, so that one failing rank cannot leave the other waiting.
    """
    bufs, error = [], None
    for p in params:
        buf = torch.zeros(p.numel(), dtype=torch.float32, device=p.device)
        mapping = getattr(p, "_hp_mapping", None)
        if mapping is not None and error is None:
            try:
                frag = fragment(mapping, p).float().flatten()
                if frag.numel() == p.numel():
                    buf.copy_(frag)
                else:
                    addr = mapping.lp_fragment_address
                    buf.narrow(0, addr.start, addr.numel).copy_(frag)
            except Exception as exc:  # noqa: BLE001 - reported after the collective, on every rank
                error = f"{type(exc).__name__}: {exc}"
        bufs.append(buf)
    flat = torch.cat(bufs)
    ok = torch.tensor(0.0 if error else 1.0, device=flat.device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(flat)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    if ok.item() < 1:
        raise RuntimeError(f"could not read DeepSpeed's partitioned fp32 state on some rank: {error}")
    return flat.cpu()


class PolicyTrainer:
    """The actor plus its optimizer: OpenRLHF's DeepspeedStrategy (ZeRO-2 or ZeRO-3, bf16, AdamW), or a bf16 +
    fp32-master torch stand-in with the same update (what DeepSpeed's bf16 optimizer does) for CPUs."""

    def __init__(
        self,
        path: str,
        *,
        kind: str,
        lr: float,
        device: str,
        steps: int,
        max_tokens_per_gpu: int = 16384,
        manual_boundary: bool = True,
        zero_stage: int = 2,
    ) -> None:
        from openrlhf.models import Actor

        if zero_stage not in (2, 3):
            raise ValueError(f"zero_stage must be 2 or 3, got {zero_stage}")
        self.kind = kind
        self.zero_stage = zero_stage
        self.device = device
        self.manual_boundary = manual_boundary
        if kind == "deepspeed":
            from openrlhf.utils.deepspeed import DeepspeedStrategy

            for k, v in {
                "RANK": "0",
                "LOCAL_RANK": "0",
                "WORLD_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1",
            }.items():
                os.environ.setdefault(k, v)
            os.environ.setdefault("MASTER_PORT", str(29500 + random.randrange(1000)))
            args = NS(
                local_rank=-1,
                ds=NS(
                    param_dtype="bf16",
                    zero_stage=zero_stage,
                    tensor_parallel_size=1,
                    ring_attn_size=1,
                    adam_offload=False,
                    zpg=1,
                    use_universal_ckpt=False,
                    grad_accum_dtype=None,
                    overlap_comm=False,
                    deepcompile=False,
                ),
                train=NS(dynamic_batch_enable=True, max_tokens_per_gpu=max_tokens_per_gpu),
            )
            self.strategy = DeepspeedStrategy(
                seed=42,
                max_norm=1.0,
                micro_train_batch_size=1,
                train_batch_size=1,
                zero_stage=zero_stage,
                args=args,
            )
            self.strategy.setup_distributed()
            actor = Actor(
                path,
                attn_implementation="sdpa",
                param_dtype="bf16",
                ds_config=self.strategy.get_ds_train_config(),
                packing_samples=False,
            )
            cfg = dict(
                optim="adam",
                muon={},
                adam=dict(lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0),
                lr_scheduler="constant",
                lr_warmup_ratio=0.0,
                min_lr_ratio=0.1,
                max_norm=1.0,
                scheduler_steps=steps,
            )
            self.actor, self.optim, self.sched = self.strategy.prepare((actor, cfg))
        else:
            self.strategy = NS(
                args=NS(
                    train=NS(max_tokens_per_gpu=max_tokens_per_gpu),
                    ds=NS(ring_attn_size=1, tensor_parallel_size=1),
                ),
                ds_device_mesh=None,
            )
            self.actor = Actor(path, attn_implementation="sdpa", param_dtype="bf16", packing_samples=False)
            self.actor.model.to(device)
            params = [p for p in self.actor.parameters() if p.requires_grad]
            self.masters = [p.detach().float().clone().requires_grad_(True) for p in params]
            self.params = params
            self.optim = torch.optim.AdamW(self.masters, lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
            self.last_grad_norm = 0.0

    @property
    def hf(self):
        m = self.actor.model
        return m.module if hasattr(m, "module") else m

    def before_micro_batch(self, is_last: bool) -> None:
        """What WideSeekActorPPOTrainer.training_step does (ppo_actor needs vLLM, absent here)."""
        if self.kind == "deepspeed" and self.manual_boundary:
            from training.openrlhf_ext.replay import mark_accumulation_boundary

            mark_accumulation_boundary(self.actor, is_last)

    def backward(self, loss: torch.Tensor) -> None:
        if self.kind == "deepspeed":
            self.strategy.backward(loss, self.actor, self.optim)
        else:
            loss.backward()

    def full_fp32(self, what: str) -> torch.Tensor:
        """The full fp32 ``"grad"`` (reduced over ranks, before the step) or ``"master"`` weights, flattened.

        Collective under data parallelism: every rank must call it at the same point."""
        params = list(self.hf.parameters())
        if self.kind == "deepspeed" and self.zero_stage == 3:
            raise NotImplementedError("full fp32 vectors are read from ZeRO-1/2 partitions; use zero_stage=2")
        if self.kind == "deepspeed":
            if what == "grad":
                return _flat_ds(params, lambda m, p: m.get_lp_grad_fragment(p._index_in_param_group))
            return _flat_ds(params, lambda m, p: m.get_hp_fragment())
        if what == "grad":
            return torch.cat([m.grad.detach().float().flatten() for m in self.masters]).cpu()
        return torch.cat([m.detach().float().flatten() for m in self.masters]).cpu()

    def step(self, capture: dict | None = None) -> float:
        """One optimizer step; with ``capture`` (a dict), also record the full fp32 gradient it used."""
        if self.kind == "deepspeed":
            if capture is not None:
                capture["grad"] = self.full_fp32("grad")
            self.strategy.optimizer_step(self.optim, self.actor, self.sched)
            return float(self.strategy.get_grad_norm(self.actor))
        for p, m in zip(self.params, self.masters):
            m.grad = p.grad.float() if p.grad is not None else torch.zeros_like(m)
            p.grad = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # what DDP/DeepSpeed do: average the ranks' gradients (OpenRLHF's loss multiplies by dp_size for
            # this)
            for m in self.masters:
                dist.all_reduce(m.grad)
                m.grad.div_(dist.get_world_size())
        if capture is not None:
            capture["grad"] = self.full_fp32("grad")
        norm = torch.nn.utils.clip_grad_norm_(self.masters, 1.0).item()
        self.optim.step()
        self.optim.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p, m in zip(self.params, self.masters):
                p.copy_(m.to(p.dtype))
        return norm


def grpo_step(
    engine: PolicyTrainer,
    ref_model,
    samples: list,
    stamps: list,
    *,
    micro_rows: int = 4,
    capture: dict | None = None,
    kl_coef: float = KL_COEF,
) -> dict[str, Any]:
    """One training step on a rollout batch, as OpenRLHF 0.11.2 + the extension run it.

    Every rank makes experiences and advantages for the whole batch, then trains on its ``rank_share``."""
    from openrlhf.models import PolicyLoss
    from openrlhf.models.loss import aggregate_loss
    from openrlhf.models.utils import compute_approx_kl
    from openrlhf.trainer.ppo_utils.experience import Experience
    from openrlhf.utils.loss_utils import get_loss_batch_info

    from training.openrlhf_ext.assign import assign_advantages
    from training.openrlhf_ext.replay import WideSeekReplayBuffer

    dev = engine.device
    actor = engine.actor
    t0 = time.perf_counter()
    for i, s in enumerate(samples):  # RemoteExperienceMaker.split_rollout_samples
        s.index = [i]
    experiences = [
        Experience.concat_experiences(samples[i : i + micro_rows], 0)
        for i in range(0, len(samples), micro_rows)
    ]
    actor.eval()
    with torch.no_grad():  # RemoteExperienceMaker.make_experience: old (actor) and reference log-probs
        for exp in experiences:
            seq, am, att = exp.sequences.to(dev), exp.action_mask.to(dev), exp.attention_mask.to(dev)
            exp.action_log_probs = actor(seq, am, att).cpu()
            exp.base_action_log_probs = ref_model(seq, am, att).cpu()
            exp.kl = torch.zeros_like(exp.action_log_probs)
    actor.train()
    folded, summary = assign_advantages(experiences, stamps, advantage_clip=(-10.0, 10.0))
    full = Experience.concat_experiences(experiences, 0)  # rows in sample order, for the fp32 reference
    local = rank_share(experiences)
    t_exp = time.perf_counter() - t0

    if dev.startswith("cuda"):
        buffer = WideSeekReplayBuffer(1, 0, cpu_offload=True, packing_samples=False, dynamic_batch=True)
    else:  # CPU dry run: the buffer only records the CUDA device for sample(), which is unused here
        stock_current = torch.cuda.current_device
        torch.cuda.current_device = lambda: 0
        try:
            buffer = WideSeekReplayBuffer(1, 0, cpu_offload=False, packing_samples=False, dynamic_batch=True)
        finally:
            torch.cuda.current_device = stock_current
    for exp in local:  # PolicyModelActor.append
        buffer.append(exp)
    buffer.setup_dynamic_batch(engine.strategy)
    loss_fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.28, dual_clip=10.0, token_level_loss=True)

    t1 = time.perf_counter()
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    policy_loss = kl_total = 0.0
    clip_ratio = []
    for step in range(len(buffer)):  # ActorPPOTrainer.training_step on the dynamic-batch path
        mb = buffer.collate_fn([buffer[step]])
        mb.to_device(torch.device(dev))
        engine.before_micro_batch(bool(buffer.dynamic_optimizer_step[step]))
        logp = actor(mb.sequences, mb.action_mask, attention_mask=mb.attention_mask)
        info = get_loss_batch_info(
            engine.strategy, mb.action_mask, replay_buffer=buffer, step=step, dynamic_batch=True
        )
        pl, cr, _, _, _ = loss_fn(
            logp,
            mb.action_log_probs,
            mb.advantages,
            action_mask=mb.action_mask,
            rollout_log_probs=mb.rollout_log_probs,
            **info,
        )
        kl = compute_approx_kl(
            logp, mb.base_action_log_probs, log_probs_old=mb.action_log_probs, kl_estimator="k3"
        )
        kl_loss = aggregate_loss(kl, mb.action_mask, **info)
        engine.backward(pl + kl_coef * kl_loss)
        policy_loss += pl.item()
        kl_total += kl_loss.item()
        clip_ratio.append(cr.item())
    grad_norm = engine.step(capture)
    if dev.startswith("cuda"):
        torch.cuda.synchronize()
    t_train = time.perf_counter() - t1
    per_rank = gather(
        {
            "rows": len(buffer.items),
            "micro_batches": len(buffer),
            "action_tokens": sum(int(it.action_mask.sum()) for it in buffer.items),
            "tokens": sum(int(it.total_length) for it in buffer.items),
            "grad_norm": grad_norm,
            "policy_loss": policy_loss,
            "kl_loss": kl_total,
        }
    )
    # each rank's loss carries OpenRLHF's dp_size factor (against gradient averaging): the step's loss is the
    # mean
    policy_loss = sum(r["policy_loss"] for r in per_rank) / len(per_rank)
    kl_total = sum(r["kl_loss"] for r in per_rank) / len(per_rank)
    return {
        "world_size": world()[1],
        "per_rank": per_rank,
        "rows": summary.rows,
        "rollouts": summary.rollouts,
        "task_groups": summary.groups,
        "action_tokens": summary.action_tokens,
        "micro_batches": len(buffer),
        "optimizer_steps": int(sum(buffer.dynamic_optimizer_step)),
        "policy_loss": policy_loss,
        "kl_loss": kl_total,
        "grad_norm": grad_norm,
        "clip_ratio_mean": sum(clip_ratio) / len(clip_ratio),
        "seconds_experience": t_exp,
        "seconds_train": t_train,
        "train_tokens_per_s": sum(int(s.total_length.item()) for s in samples) / t_train,
        "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if dev.startswith("cuda") else None,
        "_folded": folded,
        "_full": full,
    }
