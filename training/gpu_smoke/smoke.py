"""GPU smoke run of the training side: rows -> OpenRLHF Actor/PolicyLoss -> one optimizer step, then GRPO.

    python -m training.gpu_smoke.smoke --rows rows.jsonl --out OUT [--engine deepspeed|torch] [--grpo-steps
    30]

Part A (one step on real rollout rows). ``--rows`` is a JSONL of rows in the executor's contract, written by a
real WideSeek graph rollout (``examples/train_dry_run.py --rows-out``: the unmodified graph over the in-actor
endpoint, a tiny Qwen3-style tokenizer, the scripted engine). A tiny ``Qwen3ForCausalLM`` built from a
``Qwen3Config`` is saved and loaded by OpenRLHF's ``Actor`` in bf16. The rows then take the path they take in
training: our stamping and conversion to OpenRLHF ``Experience``, old/ref log-probs from forwards, our
per-rollout GRPO with dual-level weights, our replay buffer's dynamic batching, and per micro-batch OpenRLHF's
``get_loss_batch_info``, ``PolicyLoss(0.2, 0.28, dual_clip=10)`` and the k3 KL loss (coef 0.001), exactly as
``ActorPPOTrainer.training_step`` combines them, with one optimizer step at the end. With ``--engine
deepspeed`` the model, optimizer and backward are OpenRLHF's ``DeepspeedStrategy`` (ZeRO-2, bf16, AdamW);
``--engine torch`` stands in a bf16 model with fp32 master weights and torch AdamW (what DeepSpeed's bf16
optimizer does). The step's gradient is checked against an fp32 reference that evaluates spec section 6's
objective directly.

Part B (GRPO on a synthetic reward). Each rollout is a lead and two subagents (3 agents, 3 rows), sampled from
the policy itself; the rollout reward is the fraction of a target token among all tokens the rollout
generated. Groups of 8 rollouts per task, the same pipeline as Part A, one optimizer step per batch; the mean
reward per step is recorded and should rise.

Data parallelism. Started by ``torchrun --nproc_per_node N`` (any launcher that sets RANK, WORLD_SIZE and
LOCAL_RANK), every rank builds the same rows and model, computes the old/reference log-probs and our
advantages over the whole rollout batch (the driver's work in OpenRLHF), then keeps the rows OpenRLHF's
``PPOTrainer.train_step`` would send it: ``balance_experiences`` and then ``async_run_method_batch``'s
chunking over the actor ranks. Our replay buffer all-reduces the step's token count and micro-batch count;
DeepSpeed (or, for the torch engine, an explicit all-reduce) averages the gradients. Part B's rollouts are
sampled on rank 0 and broadcast. ``--dump`` saves part A's full fp32 gradient, the fp32 weights before/after
the step and the fp32 reference gradient, so that ``training/gpu_smoke/compare.py`` can compare a 1-rank and
an N-rank run element by element. Rank 0 writes results.

Results go to OUT/smoke-ENGINE[TAG].json (and a log on stdout). vLLM and Ray are not needed (nor installed on
the device).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
try:  # flash-attn cannot be installed without building it for CUDA; OpenRLHF only needs 5 helpers of it
    import flash_attn  # noqa: F401
except ImportError:
    sys.path.append(str(REPO / "tests" / "training" / "stubs"))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

KL_COEF = 0.001


def world() -> tuple[int, int]:
    """(rank, world size) as the launcher set them; (0, 1) when run as a plain process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def log(msg: str) -> None:
    rank, size = world()
    who = f" rank {rank}/{size}" if size > 1 else ""
    print(f"[smoke{who} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


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


# --------------------------------------------------------------------------------------------- model / engine
def save_tiny_qwen3(path: Path, *, vocab: int, hidden: int, layers: int, max_pos: int, seed: int) -> dict:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    heads = max(2, hidden // 32)
    cfg = Qwen3Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=32,
        max_position_embeddings=max_pos,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
    )
    model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    rank, size = world()
    if size > 1 and dist.is_initialized():
        # once a process group exists transformers writes checkpoints on global rank 0 only; the other ranks
        # (one host) copy rank 0's files, which also guarantees that every rank starts from the same weights
        holder = [str(path)]
        dist.broadcast_object_list(holder, src=0)
        if rank == 0:
            model.save_pretrained(path)
        dist.barrier()
        if rank != 0:
            shutil.copytree(holder[0], path)
        dist.barrier()
    else:
        model.save_pretrained(path)
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "layers": layers,
        "heads": heads,
        "params": sum(p.numel() for p in model.parameters()),
    }


class Engine:
    """The actor plus its optimizer: OpenRLHF's DeepspeedStrategy, or a bf16 + fp32-master torch stand-in."""

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
    ) -> None:
        from openrlhf.models import Actor

        self.kind = kind
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
                    zero_stage=2,
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
                seed=42, max_norm=1.0, micro_train_batch_size=1, train_batch_size=1, zero_stage=2, args=args
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


# --------------------------------------------------------------------------------------------- shared step
def ppo_step(
    engine: Engine,
    ref_model,
    samples: list,
    stamps: list,
    *,
    micro_rows: int = 4,
    capture: dict | None = None,
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
        engine.backward(pl + KL_COEF * kl_loss)
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


def reference_objective(model_fp32, full, stamps: list, folded, dev: str) -> tuple[float, float]:
    """Spec section 6 evaluated directly in fp32: loss value and gradient norm (pre-clipping).

    The gradient stays in ``model_fp32``'s parameters for the caller."""
    from openrlhf.models.utils import compute_approx_kl, masked_mean

    from training.advantages import dual_level_objective

    order = list(range(len(stamps)))  # ppo_step keeps rows in sample order
    seq, am, att = full.sequences.to(dev), full.action_mask.to(dev), full.attention_mask.to(dev)
    pos = att.long().cumsum(-1) - 1
    pos.masked_fill_(att == 0, 1)
    model_fp32.zero_grad()
    logits = model_fp32(seq, attention_mask=att, position_ids=pos).logits.float()
    logp_all = torch.log_softmax(logits[:, :-1], -1).gather(-1, seq[:, 1:, None]).squeeze(-1)
    logp = logp_all[:, -am.shape[1] :] * am
    old = full.action_log_probs.to(dev)
    ratio = (logp - old).clamp(-20, 20).exp()
    adv = folded.row_advantage.to(dev)[:, None].expand_as(ratio)
    s1, s2 = ratio * adv, ratio.clamp(0.8, 1.28) * adv
    c1 = torch.min(s1, s2)
    per_token = -torch.where(adv < 0, torch.max(c1, 10.0 * adv), c1)
    rk = {k: n for n, k in enumerate(dict.fromkeys(stamps[i].rollout_key for i in order))}
    ak = {k: n for n, k in enumerate(dict.fromkeys(stamps[i].agent_key for i in order))}
    policy = dual_level_objective(
        per_token,
        am.to(per_token.dtype),
        [rk[stamps[i].rollout_key] for i in order],
        [ak[stamps[i].agent_key] for i in order],
    )
    kl = compute_approx_kl(logp, full.base_action_log_probs.to(dev), kl_estimator="k3")
    loss = policy + KL_COEF * masked_mean(kl, am, dim=None)
    loss.backward()
    norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model_fp32.parameters() if p.grad is not None))
    return loss.item(), norm.item()


# --------------------------------------------------------------------------------------------- part A
def part_a(args, work: Path) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    from training.openrlhf_ext.convert import row_to_experience
    from training.openrlhf_ext.rowmeta import stamp_rollout

    rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines() if line.strip()]
    by_rollout: dict[str, list] = {}
    for r in rows:
        by_rollout.setdefault(r["wideseek"]["rollout_id"], []).append(r)
    if args.rollouts:
        keep = set(list(by_rollout)[: args.rollouts])
        by_rollout = {k: v for k, v in by_rollout.items() if k in keep}
        rows = [r for rs in by_rollout.values() for r in rs]
    original = sorted({r["reward"] for r in rows})
    # The scripted player solves every task (reward 1.0 everywhere), which gives GRPO nothing to learn from;
    # the rollouts keep their tokens but get distinct rewards so the advantages are non-zero. All rollouts of
    # the file form one GRPO group (stamped group 0): rollouts of *one* task from the deterministic player are
    # token-identical, so their group gradient is exactly zero; the docs' run uses rollouts of four different
    # tasks instead.
    synthetic = [1.0, 0.0, 0.5, 0.25, 0.75, 0.1, 0.9, 0.4]
    for i, rs in enumerate(by_rollout.values()):
        for r in rs:
            r["reward"] = r["scores"] = synthetic[i % len(synthetic)]
    stamped = [
        item for s, rs in enumerate(by_rollout.values()) for item in stamp_rollout(rs, group=0, sample=s)
    ]
    max_id = max(max(r["observation_tokens"]) for r in rows)
    max_len = max(len(r["observation_tokens"]) for r in rows)
    vocab = (max_id // 64 + 1) * 64
    path = work / "tiny-qwen3-a"
    model_info = save_tiny_qwen3(path, vocab=vocab, hidden=256, layers=4, max_pos=8192, seed=args.seed)
    log(
        f"part A: {len(rows)} rows from {len(by_rollout)} rollouts (rewards in file {original}); model "
        f"{model_info}"
    )

    engine = Engine(
        str(path),
        kind=args.engine,
        lr=args.lr_a,
        device=args.device,
        steps=10,
        max_tokens_per_gpu=args.max_tokens_per_gpu,
        manual_boundary=not args.ds_stock_boundary,
    )
    ref = (
        AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa")
        .to(args.device)
        .eval()
    )
    from openrlhf.models import Actor

    ref_actor = Actor(ref)
    ref_actor.packing_samples = False
    fp32 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").to(
        args.device
    )
    before = {n: p.detach().float().clone() for n, p in engine.hf.named_parameters()}

    samples = [row_to_experience(r, st, max_len=8192) for r, st in stamped]
    stamps = [st for _, st in stamped]
    capture: dict | None = {} if args.dump else None
    out = ppo_step(engine, ref_actor, samples, stamps, capture=capture)
    folded, full = out.pop("_folded"), out.pop("_full")
    ref_loss, ref_norm = reference_objective(fp32, full, stamps, folded, args.device)
    names = [n for n, _ in engine.hf.named_parameters()]
    if [n for n, _ in fp32.named_parameters()] != names:
        raise RuntimeError("the reference model's parameters are not in the actor's order")
    if capture is not None:
        capture["master_after"] = engine.full_fp32("master")  # collective: before any rank-0-only branch
        capture["bf16_before"] = torch.cat([before[n].flatten() for n in names]).cpu()
        capture["bf16_after"] = torch.cat(
            [p.detach().float().flatten() for p in engine.hf.parameters()]
        ).cpu()
        capture["ref_grad"] = torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).float().flatten()
                for p in fp32.parameters()
            ]
        ).cpu()
        capture["names"], capture["shapes"] = names, [tuple(p.shape) for p in engine.hf.parameters()]
        capture["grad_norm"], capture["world_size"] = out["grad_norm"], world()[1]
        if world()[0] == 0:
            torch.save(capture, args.dump)
    # the ranks must hold bit-identical bf16 weights after the step (ZeRO-2 all-gathers the updated
    # partitions)
    digest = hashlib.sha256(
        b"".join(
            p.detach().cpu().contiguous().view(torch.int16).numpy().tobytes() for p in engine.hf.parameters()
        )
    ).hexdigest()
    digests = gather(digest)
    changed = total = 0
    max_delta = 0.0
    for n, p in engine.hf.named_parameters():
        d = (p.detach().float() - before[n]).abs()
        changed += int((d > 0).sum())
        total += d.numel()
        max_delta = max(max_delta, d.max().item())
    out.update(
        {
            "engine": args.engine,
            "dtype": str(next(engine.hf.parameters()).dtype),
            "max_row_tokens": max_len,
            "optimizer": type(engine.optim).__name__
            + (f"({type(engine.optim.optimizer).__name__})" if hasattr(engine.optim, "optimizer") else ""),
            "rollout_rewards": sorted({r["reward"] for r in rows}),
            "agents_per_rollout": sorted({r["wideseek"]["num_agents"] for r in rows}),
            "reference_loss_fp32": ref_loss,
            "reference_grad_norm_fp32": ref_norm,
            # the loss itself is ~0 (group-centred advantages, ratio ~1), so compare it absolutely
            "loss_abs_diff": abs(out["policy_loss"] + KL_COEF * out["kl_loss"] - ref_loss),
            "grad_norm_rel_diff": abs(out["grad_norm"] - ref_norm) / max(ref_norm, 1e-12),
            "params_changed_fraction": changed / total,
            "max_param_delta": max_delta,
            "ranks_weights_identical": len(set(digests)) == 1,
            "weights_sha256": digests[0],
            "finite": all(math.isfinite(v) for v in (out["policy_loss"], out["kl_loss"], out["grad_norm"])),
            "model": model_info,
        }
    )
    if world()[0] == 0:
        log("part A: " + json.dumps({k: v for k, v in out.items() if k != "model"}))
    del engine
    return out


# --------------------------------------------------------------------------------------------- part B
def generate(hf, prompt_ids: list[list[int]], *, gen: int, device: str, vocab: int) -> tuple[list, list]:
    hf.eval()
    batch = torch.tensor(prompt_ids, device=device)
    with torch.no_grad():
        out = hf.generate(
            batch,
            attention_mask=torch.ones_like(batch),
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            max_new_tokens=gen,
            min_new_tokens=gen,
            use_cache=True,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=0,
            eos_token_id=None,
        )
    comp = out.sequences[:, batch.shape[1] :]
    logits = torch.stack(out.logits, 1).float()
    lps = torch.log_softmax(logits, -1).gather(-1, comp[..., None]).squeeze(-1)
    hf.train()
    return comp.tolist(), lps.tolist()


def contract_row(prompt_ids, comp, lps, *, reward, rollout_id, agent_id, role, num_agents, task):
    return {
        "prompt": task,
        "label": "synthetic",
        "observation_tokens": list(prompt_ids) + list(comp),
        "action_ranges": [(len(prompt_ids), len(prompt_ids) + len(comp))],
        "rollout_log_probs": [0.0] * len(prompt_ids) + list(lps),
        "reward": reward,
        "scores": reward,
        "truncated": False,
        "extra_logs": {},
        "wideseek": {
            "rollout_id": rollout_id,
            "agent_id": agent_id,
            "role": role,
            "turn": 0,
            "num_agents": num_agents,
            "agent_weight": 1.0 / num_agents,
            "agent_token_total": len(comp),
        },
    }


def part_b(args, work: Path) -> dict[str, Any]:
    from openrlhf.models import Actor
    from transformers import AutoModelForCausalLM

    from training.openrlhf_ext.convert import row_to_experience
    from training.openrlhf_ext.rowmeta import stamp_rollout

    vocab, gen, plen, target, marker = 64, 12, 8, 5, 3
    path = work / "tiny-qwen3-b"
    info = save_tiny_qwen3(path, vocab=vocab, hidden=128, layers=2, max_pos=256, seed=args.seed + 1)
    engine = Engine(
        str(path),
        kind=args.engine,
        lr=args.lr_b,
        device=args.device,
        steps=args.grpo_steps,
        manual_boundary=not args.ds_stock_boundary,
    )
    ref = Actor(
        AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa")
        .to(args.device)
        .eval()
    )
    ref.packing_samples = False
    rng = random.Random(args.seed)
    rank, size = world()

    def sample(prompts: list[list[int]]) -> tuple[list, list]:
        # rank 0 plays the rollout engine; the other ranks receive its samples (the rows' tokens and
        # log-probs)
        payload = (
            list(generate(engine.hf, prompts, gen=gen, device=args.device, vocab=vocab))
            if rank == 0
            else [None, None]
        )
        if size > 1:
            dist.broadcast_object_list(payload, src=0)
        return payload[0], payload[1]

    curve = []
    for step in range(args.grpo_steps):
        t0 = time.perf_counter()
        tasks = [[rng.randrange(6, vocab) for _ in range(plen)] for _ in range(args.tasks_per_step)]
        # lead turn for every rollout of every task at once
        lead_prompts = [t for t in tasks for _ in range(args.group)]
        lead_comp, lead_lp = sample(lead_prompts)
        sub_prompts = [p + [marker, k] + c[:4] for p, c in zip(lead_prompts, lead_comp) for k in (1, 2)]
        sub_comp, sub_lp = sample(sub_prompts)
        stamped, rewards = [], []
        for i, prompt in enumerate(lead_prompts):
            comps = [lead_comp[i], sub_comp[2 * i], sub_comp[2 * i + 1]]
            reward = sum(tok == target for c in comps for tok in c) / sum(len(c) for c in comps)
            rewards.append(reward)
            rid = f"s{step}-r{i}"
            rows = [
                contract_row(
                    prompt,
                    lead_comp[i],
                    lead_lp[i],
                    reward=reward,
                    rollout_id=rid,
                    agent_id="lead",
                    role="lead",
                    num_agents=3,
                    task=f"task{i // args.group}",
                )
            ]
            for k in (0, 1):
                j = 2 * i + k
                rows.append(
                    contract_row(
                        sub_prompts[j],
                        sub_comp[j],
                        sub_lp[j],
                        reward=reward,
                        rollout_id=rid,
                        agent_id=f"sub-{k + 1}",
                        role="subagent",
                        num_agents=3,
                        task=f"task{i // args.group}",
                    )
                )
            stamped += stamp_rollout(rows, group=i // args.group, sample=i % args.group)
        samples = [row_to_experience(r, st, max_len=256) for r, st in stamped]
        out = ppo_step(engine, ref, samples, [st for _, st in stamped], micro_rows=64)
        out.pop("_folded"), out.pop("_full")
        rec = {
            "step": step,
            "reward_mean": sum(rewards) / len(rewards),
            "rows": out["rows"],
            "policy_loss": out["policy_loss"],
            "kl_loss": out["kl_loss"],
            "grad_norm": out["grad_norm"],
            "rows_per_rank": [r["rows"] for r in out["per_rank"]],
            "seconds": time.perf_counter() - t0,
        }
        curve.append(rec)
        if rank == 0:
            log("part B: " + json.dumps(rec))
    first = sum(c["reward_mean"] for c in curve[:3]) / min(3, len(curve))
    last = sum(c["reward_mean"] for c in curve[-3:]) / min(3, len(curve))
    return {
        "world_size": size,
        "model": info,
        "target_token": target,
        "chance_reward": 1 / vocab,
        "group": args.group,
        "tasks_per_step": args.tasks_per_step,
        "lr": args.lr_b,
        "curve": curve,
        "reward_first3": first,
        "reward_last3": last,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", required=True, help="JSONL of contract rows from a graph rollout")
    p.add_argument("--out", required=True)
    p.add_argument("--engine", choices=["deepspeed", "torch"], default="deepspeed")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--lr-a", type=float, default=1e-6, help="part A learning rate (the paper's)")
    p.add_argument("--lr-b", type=float, default=1e-3, help="part B learning rate (tiny random model)")
    p.add_argument("--grpo-steps", type=int, default=30)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--tasks-per-step", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-a", action="store_true")
    p.add_argument("--max-tokens-per-gpu", type=int, default=16384, help="part A micro-batch token budget")
    p.add_argument(
        "--ds-stock-boundary",
        action="store_true",
        help="do NOT mark DeepSpeed's accumulation boundary per micro-batch (stock OpenRLHF 0.11.2 "
        "dynamic batching; loses gradient, kept to reproduce the measurement)",
    )
    p.add_argument("--tag", default="", help="suffix of the result file name")
    p.add_argument(
        "--rollouts", type=int, default=0, help="use only the first N rollouts of --rows (CPU dry runs)"
    )
    p.add_argument(
        "--dump",
        default="",
        help="save part A's full fp32 gradient and weights here (torch.save), "
        "for training/gpu_smoke/compare.py",
    )
    args = p.parse_args(argv)
    _, size = world()
    if size > 1 and args.engine == "torch" and not dist.is_initialized():
        # DeepspeedStrategy.setup_distributed does this for the deepspeed engine
        if args.device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "python": sys.version.split()[0],
    }
    import importlib.metadata as md

    for pkg in ("openrlhf", "deepspeed", "transformers", "peft"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = None
    log(f"environment: {env}")
    result: dict[str, Any] = {
        "environment": env,
        "engine": args.engine,
        "world_size": size,
        "argv": sys.argv[1:] if argv is None else argv,
    }
    out_file = out_dir / f"smoke-{args.engine}{args.tag}.json"
    with tempfile.TemporaryDirectory(prefix="wideseek-smoke-") as tmp:
        try:
            if not args.skip_a:
                result["part_a"] = part_a(args, Path(tmp))
            if args.grpo_steps > 0:
                result["part_b"] = part_b(args, Path(tmp))
        finally:
            if world()[0] == 0:
                out_file.write_text(json.dumps(result, indent=2, default=str))
    if world()[0] == 0:
        log(f"wrote {out_file}")
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
