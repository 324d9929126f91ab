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

from training.grpo_step import KL_COEF, PolicyTrainer, gather, grpo_step, world  # noqa: E402


def log(msg: str) -> None:
    rank, size = world()
    who = f" rank {rank}/{size}" if size > 1 else ""
    print(f"[smoke{who} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


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


# --------------------------------------------------------------------------------------------- shared step
def reference_objective(model_fp32, full, stamps: list, folded, dev: str) -> tuple[float, float]:
    """Spec section 6 evaluated directly in fp32: loss value and gradient norm (pre-clipping).

    The gradient stays in ``model_fp32``'s parameters for the caller."""
    from openrlhf.models.utils import compute_approx_kl, masked_mean

    from training.advantages import dual_level_objective

    order = list(range(len(stamps)))  # grpo_step keeps rows in sample order
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

    engine = PolicyTrainer(
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
    out = grpo_step(engine, ref_actor, samples, stamps, capture=capture)
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
    engine = PolicyTrainer(
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
        out = grpo_step(engine, ref, samples, [st for _, st in stamped], micro_rows=64)
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
