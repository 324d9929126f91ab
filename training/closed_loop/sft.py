"""Supervised warm start: teach a randomly initialised model the protocol from the scripted player's rollouts.

Data. The synthetic world's scripted player (``langgraph_wideseek.testing.WideSeekPolicy``, which acts only on
what it is sent) drives the token-level stand-in engine (``training.testing.ScriptedEngine``) through the same
path training uses: ``AgentExecutor.execute`` -> in-actor endpoint -> WideSeek graph. The rows it returns are
therefore tokenised exactly as the endpoint tokenises real rollouts (chat template, tools, ``<think>``, hermes
JSON), one row per generation call. The loss covers the generated tokens only (the row's action range);
prompts, tool results and other agents' text are context. Collection runs in worker processes (the graph is
CPU work).

Training. AdamW with warm-up and cosine decay, fp32 master weights with bf16 autocast on a GPU, rows grouped
by length into micro-batches of at most ``sft_batch_tokens`` padded tokens. Checkpoints are saved at
``sft_checkpoints`` evenly spaced points (and when the time budget runs out).

Choice of budget. The loop needs an SFT model that is clearly imperfect, so that RL has room to show an
effect. Each checkpoint is scored on the *validation* world (never on the test world); the latest checkpoint
whose validation item F1 is at most ``select_val_f1[1]`` is kept (else the one closest to the range).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .config import LoopConfig
from .tasks import Split, build_splits, executor_graph_settings

log = logging.getLogger("training.closed_loop")

Row = tuple[list[int], int]   # (observation tokens, start of the generated part); the action runs to the end


# --------------------------------------------------------------------------------------------- collection
def _collect_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """One process: scripted rollouts of some tasks -> rows (token ids and action start) and their rewards."""
    from transformers import AutoTokenizer

    from langgraph_wideseek.testing.policy import WideSeekPolicy
    from training.testing import PolicyScript, ScriptedEngine

    from .rollouts import make_executor, openrlhf_sampling, run_rollouts

    tok = AutoTokenizer.from_pretrained(payload["tokenizer"])
    engine = ScriptedEngine(tok, PolicyScript(WideSeekPolicy()))

    async def main() -> list:
        executor = make_executor(payload["graph"])
        try:
            return await run_rollouts(executor, engine, tok, payload["records"], samples=1,
                                      max_len=payload["max_len"], sampling=openrlhf_sampling(payload["max_new"]),
                                      concurrency=8)
        finally:
            await executor.aclose()

    rollouts = asyncio.run(main())
    rows: list[Row] = []
    texts: list[str] = []
    for ro in rollouts:
        for r in ro.rows:
            (start, end), = r["action_ranges"]
            if end != len(r["observation_tokens"]):
                raise ValueError("a row's action must end its sequence")
            rows.append((list(r["observation_tokens"]), start))
            if payload.get("texts"):
                texts.append(tok.decode(r["observation_tokens"]))
    return {"rows": rows, "texts": texts, "rewards": [ro.scores.get("reward", 0.0) for ro in rollouts],
            "item_f1": [ro.scores.get("item_f1", 0.0) for ro in rollouts],
            "errors": [ro.error for ro in rollouts if ro.error]}


def collect(cfg: LoopConfig, split: Split, records: list[dict[str, str]], tokenizer_dir: Path, *,
            texts: bool = False, max_len: int | None = None, max_new: int | None = None) -> dict[str, Any]:
    """Scripted rollouts of ``records`` in worker processes (spawned: the parent may hold a GPU context).

    Every one must be solved exactly (the scripted player solves every task); anything less means the settings
    cut it short, and the rows would teach the model mistakes, so that raises."""
    import multiprocessing as mp

    from langgraph_wideseek.tools.local import LocalIndex

    LocalIndex.open(split.corpus, split.index_dir)  # build the index once, before the workers open it
    workers = cfg.collect_workers or min(16, os.cpu_count() or 1)
    chunks = [records[i::workers] for i in range(workers) if records[i::workers]]
    payloads = [{"tokenizer": str(tokenizer_dir), "graph": executor_graph_settings(cfg, split), "records": c,
                 "max_len": max_len or cfg.max_len, "max_new": max_new or cfg.max_new_tokens, "texts": texts} for c in chunks]
    t0 = time.perf_counter()
    if len(payloads) == 1:
        parts = [_collect_worker(payloads[0])]
    else:
        with ProcessPoolExecutor(len(payloads), mp_context=mp.get_context("spawn")) as pool:
            parts = list(pool.map(_collect_worker, payloads))
    out: dict[str, Any] = {"rows": [], "texts": [], "rewards": [], "item_f1": [], "errors": []}
    for p in parts:
        for k in out:
            out[k].extend(p[k])
    out["seconds"] = time.perf_counter() - t0
    if out["errors"]:
        raise RuntimeError(f"{len(out['errors'])} scripted rollouts failed, e.g. {out['errors'][0]}")
    imperfect = sum(f < 1.0 for f in out["item_f1"])
    if imperfect:  # the scripted player solves every task; if it did not, the settings cut it short
        raise RuntimeError(f"{imperfect} of {len(out['item_f1'])} scripted rollouts scored item F1 < 1 (check "
                           "max_new_tokens, max_len and the turn limits): the SFT data would teach mistakes")
    return out


# --------------------------------------------------------------------------------------------- tokenizer
def make_tokenizer(cfg: LoopConfig, work: Path, splits: dict[str, Split]) -> Path:
    """Train the loop's BPE on the text of scripted rollouts (rendered prompts, tools, replies) and the corpus.

    The scripted rollouts are first tokenised with the repository's small test tokenizer: only their text is
    kept, so the new tokenizer's merges fit exactly what the agents read and write."""
    from training.tiny_qwen3 import build_tokenizer

    bootstrap = Path(__file__).resolve().parents[2] / "tests" / "training" / "assets" / "tiny-qwen3"
    train = splits["train"]
    # the bootstrap tokenizer is coarser than the one being trained: give its rollouts room
    sample = collect(cfg, train, train.rows(train.tasks[: cfg.tokenizer_rollouts]), bootstrap, texts=True,
                     max_len=4 * cfg.max_len, max_new=4 * cfg.max_new_tokens)
    corpus = [json.loads(line)["text"] for line in train.corpus.read_text(encoding="utf-8").splitlines()]
    tok = build_tokenizer(sample["texts"] + corpus, cfg.vocab_size, model_max_length=cfg.max_len)
    out = work / "tokenizer"
    tok.save_pretrained(str(out))
    return out


# --------------------------------------------------------------------------------------------- training
def _batches(rows: list[Row], budget: int) -> list[list[int]]:
    """Indices grouped by length so that rows x longest <= budget (a longer row goes alone)."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        n = len(rows[i][0])
        if cur and n * (len(cur) + 1) > budget:
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def _loss(model: Any, rows: list[Row], idx: list[int], device: str) -> tuple[Any, int, int]:
    """Mean cross-entropy over the generated tokens of these rows; (loss, action tokens, all tokens)."""
    import torch

    longest = max(len(rows[i][0]) for i in idx)
    ids = torch.zeros((len(idx), longest), dtype=torch.long)
    mask = torch.zeros((len(idx), longest), dtype=torch.long)
    target = torch.zeros((len(idx), longest), dtype=torch.bool)  # positions whose *next* token is trained
    for b, i in enumerate(idx):
        seq, start = rows[i]
        ids[b, : len(seq)] = torch.tensor(seq)
        mask[b, : len(seq)] = 1
        target[b, start - 1 : len(seq) - 1] = True
    ids, mask, target = ids.to(device), mask.to(device), target.to(device)
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    picked = hidden[target]                                   # only where a generated token is predicted
    labels = ids[:, 1:][target[:, :-1]]
    logits = model.lm_head(picked).float()
    loss = torch.nn.functional.cross_entropy(logits, labels)
    return loss, int(labels.numel()), int(mask.sum())


def train(cfg: LoopConfig, rows: list[Row], init_dir: Path, out_dir: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    device = cfg.device
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(str(init_dir), dtype=torch.float32,
                                                 attn_implementation="sdpa").to(device)
    model.train()
    batches = _batches(rows, cfg.sft_batch_tokens)
    total_steps = max(1, math.ceil(cfg.sft_epochs * len(batches)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.sft_lr, betas=(0.9, 0.95), weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < cfg.sft_warmup_steps:
            return cfg.sft_lr * (step + 1) / cfg.sft_warmup_steps
        progress = (step - cfg.sft_warmup_steps) / max(1, total_steps - cfg.sft_warmup_steps)
        return cfg.sft_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    save_at = {max(1, round(total_steps * (k + 1) / cfg.sft_checkpoints)) for k in range(cfg.sft_checkpoints)}
    rng = random.Random(cfg.seed)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else _nullcontext()
    curve: list[dict[str, float]] = []
    checkpoints: list[dict[str, Any]] = []
    seen = trained = 0
    t0 = time.perf_counter()
    step = 0
    order: list[int] = []
    stopped_early = False
    while step < total_steps:
        if not order:
            order = list(range(len(batches)))
            rng.shuffle(order)
        idx = batches[order.pop()]
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        with autocast:
            loss, n_action, n_tokens = _loss(model, rows, idx, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += n_tokens
        trained += n_action
        if step % 20 == 0 or step == total_steps:
            curve.append({"step": step, "loss": float(loss.item()), "grad_norm": float(norm), "lr": lr_at(step - 1),
                          "tokens_seen": seen, "seconds": time.perf_counter() - t0})
            log.info("sft step %d/%d loss %.4f", step, total_steps, curve[-1]["loss"])
        out_of_time = time.perf_counter() - t0 > cfg.sft_max_minutes * 60
        if step in save_at or out_of_time or step == total_steps:
            path = out_dir / f"ckpt-{step:06d}"
            _save(model, path, bf16=device.startswith("cuda"))
            checkpoints.append({"step": step, "path": str(path), "tokens_seen": seen, "action_tokens": trained,
                                "loss": float(loss.item()), "seconds": time.perf_counter() - t0})
        if out_of_time:
            stopped_early = step < total_steps
            break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {"steps": step, "planned_steps": total_steps, "batches_per_epoch": len(batches), "rows": len(rows),
            "tokens_seen": seen, "action_tokens_trained": trained, "seconds": time.perf_counter() - t0,
            "stopped_by_time_budget": stopped_early, "curve": curve, "checkpoints": checkpoints,
            "tokens_per_second": seen / max(1e-9, time.perf_counter() - t0)}


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _save(model: Any, path: Path, *, bf16: bool) -> None:
    import torch

    state = {k: (v.to(torch.bfloat16) if bf16 and v.is_floating_point() else v).detach().cpu()
             for k, v in model.state_dict().items()}
    model.save_pretrained(str(path), state_dict=state)
    if bf16:  # the config should say what the weights are
        cfg = json.loads((path / "config.json").read_text())
        cfg["dtype"] = "bfloat16"
        (path / "config.json").write_text(json.dumps(cfg, indent=2))


def select(checkpoints: list[dict[str, Any]], bounds: tuple[float, float]) -> dict[str, Any]:
    """The latest checkpoint with validation item F1 <= the upper bound, preferring those >= the lower bound."""
    lo, hi = bounds
    inside = [c for c in checkpoints if lo <= c["val_item_f1"] <= hi]
    if inside:
        return inside[-1]
    below = [c for c in checkpoints if c["val_item_f1"] <= hi]
    if below:  # the best of them; among equals the latest (it has trained longest)
        return max(reversed(below), key=lambda c: c["val_item_f1"])
    return min(checkpoints, key=lambda c: c["val_item_f1"])


# --------------------------------------------------------------------------------------------- the phase
def run(cfg: LoopConfig, work: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from .evaluate import evaluate_sync, load_policy

    splits = build_splits(cfg, work)
    train_split = splits["train"]
    tok_dir = work / "tokenizer"
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    records = train_split.rows(train_split.tasks[: cfg.sft_tasks])
    data = collect(cfg, train_split, records, tok_dir)
    rows: list[Row] = data["rows"]
    log.info("SFT data: %d rows from %d scripted rollouts in %.1f s (mean reward %.3f)", len(rows), len(records),
             data["seconds"], sum(data["rewards"]) / max(1, len(data["rewards"])))
    out_dir = work / "sft"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    result = train(cfg, rows, work / "init", out_dir)
    for c in result["checkpoints"]:
        model = load_policy(c["path"], cfg)
        ev = evaluate_sync(cfg, model, tok, splits["val"], tasks=cfg.val_tasks, samples=cfg.val_samples,
                           seed=cfg.seed)
        c["val_item_f1"], c["val_reward"], c["val_seconds"] = ev["item_f1"], ev["reward"], ev["seconds"]
        log.info("SFT checkpoint step %d: validation item F1 %.3f", c["step"], c["val_item_f1"])
        del model
    chosen = select(result["checkpoints"], cfg.select_val_f1)
    final = work / "sft" / "selected"
    shutil.copytree(chosen["path"], final)
    tok.save_pretrained(str(final))
    result.update({
        "data": {"tasks": len(records), "rows": len(rows), "tokens": sum(len(r[0]) for r in rows),
                 "action_tokens": sum(len(r[0]) - r[1] for r in rows), "collect_seconds": data["seconds"],
                 "scripted_mean_reward": sum(data["rewards"]) / max(1, len(data["rewards"])),
                 "scripted_mean_item_f1": sum(data["item_f1"]) / max(1, len(data["item_f1"]))},
        "selected": {"step": chosen["step"], "val_item_f1": chosen["val_item_f1"], "path": str(final)},
    })
    return result
