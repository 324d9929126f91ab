"""Dry-run the training rollout path on a CPU: no GPU, no model, no OpenRLHF process.

It does what one OpenRLHF rollout actor does for one task group: ``AgentExecutor.execute`` ``--group`` times
concurrently, each running the whole WideSeek graph against the in-actor endpoint, with a scripted engine in
place of vLLM (the synthetic world's scripted player acts on what it is sent, through a real tokenizer and
chat template), the local search backend over a generated corpus, and the exact synthetic reward. It prints
what the trainer would receive and how long the harness itself took per model call.

    python examples/train_dry_run.py --group 8 --entities 6 --rows-out /tmp/rows.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transformers import AutoTokenizer  # noqa: E402

from langgraph_wideseek.testing import WideSeekPolicy, World  # noqa: E402
from training.agent_executor import AgentExecutor  # noqa: E402
from training.data import convert_widesearch_task  # noqa: E402
from training.engine import SamplingParamsLite  # noqa: E402
from training.rollout import ExecutorSettings  # noqa: E402
from training.rows import validate_row  # noqa: E402
from training.testing import PolicyScript, ScriptedEngine  # noqa: E402

TINY_TOKENIZER = REPO / "tests" / "training" / "assets" / "tiny-qwen3"


async def main(args: argparse.Namespace) -> int:
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    work = Path(tempfile.mkdtemp(prefix="wideseek-dry-run-"))
    world = World.generate(seed=args.seed, n_categories=1, entities_per_category=args.entities)
    corpus = world.write_corpus(work / "corpus.jsonl")
    task = world.list_task(0)
    row = convert_widesearch_task(task.record(), task.gold_csv(), source="synthetic")

    def reward(result, label):
        wrong = task.mismatches(result.answer)
        return (0.0 if wrong else 1.0), {"mismatches": float(len(wrong))}

    settings = ExecutorSettings(
        graph={
            "search": "local",
            "corpus": str(corpus),
            "index_dir": str(work / "index"),
            "summarize_pages": True,
        }
    )
    executor = AgentExecutor(settings, reward_fn=reward)
    engine = ScriptedEngine(tok, PolicyScript(WideSeekPolicy()))
    # what OpenRLHF 0.11.2's SamplesGenerator hands an agent executor
    params = SamplingParamsLite(
        temperature=1.0,
        top_p=1.0,
        top_k=-1,
        max_tokens=None,
        min_tokens=1,
        skip_special_tokens=False,
        logprobs=None,
    )
    try:
        await executor.execute(row["prompt"], row["label"], params, args.max_len, tok, engine)  # warm-up
        engine.calls.clear()
        t0 = time.perf_counter()
        groups = await asyncio.gather(
            *[
                executor.execute(row["prompt"], row["label"], params, args.max_len, tok, engine)
                for _ in range(args.group)
            ]
        )
        wall = time.perf_counter() - t0
    finally:
        await executor.aclose()

    rows = [r for g in groups for r in g]
    for r in rows:
        validate_row(r)
    per_rollout = [len(g) for g in groups]
    first = groups[0][0]["extra_logs"]
    calls = len(engine.calls)
    print(f"task {task.instance_id}: {args.entities} members, {args.group} rollouts run concurrently")
    print(
        f"rows: {len(rows)} ({statistics.mean(per_rollout):.1f} per rollout; "
        f"{first['subagents']:.0f} subagents + the lead per rollout)"
    )
    print(f"rewards: {sorted({g[0]['reward'] for g in groups})}")
    print(f"engine calls: {calls} ({calls - len(rows)} page summaries, not trained on)")
    print(
        f"tokens per row: mean {statistics.mean(len(r['observation_tokens']) for r in rows):.0f}, "
        f"max {max(len(r['observation_tokens']) for r in rows)} (tiny test tokenizer)"
    )
    # the stand-in engine computes on the event loop without yielding, so its time adds up serially
    engine_s = sum(g[0]["extra_logs"]["engine_seconds"] for g in groups if g)
    print(
        f"wall: {wall:.2f} s for the group, of which {engine_s:.2f} s in the stand-in engine (decoding the "
        "prompt, playing the turn, encoding the reply)"
    )
    print(
        f"harness time per engine call: {1000 * (wall - engine_s) / calls:.1f} ms (graph, HTTP, chat "
        f"template, "
        "tokenize/decode, tools, local search; {:.0f} calls/s on this machine)".format(
            calls / (wall - engine_s)
        )
    )
    if args.rows_out:
        with open(args.rows_out, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({**r, "action_ranges": [list(x) for x in r["action_ranges"]]}) + "\n")
        print(f"rows written to {args.rows_out}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--group", type=int, default=8, help="rollouts of the task (GRPO group size)")
    p.add_argument("--entities", type=int, default=6, help="members of the synthetic category (subagents)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-len", type=int, default=32768, help="per-call context (--data.max_len)")
    p.add_argument(
        "--tokenizer",
        default=str(TINY_TOKENIZER),
        help="a tokenizer folder with a Qwen3-style chat template (default: the repo's tiny one)",
    )
    p.add_argument("--rows-out", help="write the rows as JSONL here")
    raise SystemExit(asyncio.run(main(p.parse_args())))
