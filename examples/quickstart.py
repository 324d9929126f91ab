"""Quickstart: run the lead agent with parallel subagents on one broad task, and check its table.

    python examples/quickstart.py                     # your server if OPENAI_BASE_URL is set, else simulated
    python examples/quickstart.py --question "..." --search web

The task comes from a generated world of fictional entities, written as a local corpus, so the answer can be
checked exactly against a gold table. With ``OPENAI_BASE_URL`` set (for example a vLLM server running
``RLinf/WideSeek-R1-4b``) the real model does the work. Without it, a simulated OpenAI-compatible server
plays the model with a scripted policy: every other part (the LangGraph graph, the HTTP client, the tantivy
index, the tools, the WideSearch scorer) is the real one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from langgraph_wideseek import WideSeekConfig, WideSeekGraph
from langgraph_wideseek.testing import World

DEMO_DIR = Path(os.environ.get("WIDESEEK_DEMO_DIR", ".wideseek-demo"))


def progress(ev: dict) -> None:
    kind = ev.get("type")
    if kind == "lead_turn":
        print(f"  lead: turn {ev['turn']}", file=sys.stderr)
    elif kind == "wave":
        print(f"  lead: wave {ev['wave']} -> {ev['subagents']} subagents in parallel", file=sys.stderr)
    elif kind == "subagent_done":
        print(f"    subagent {ev['agent_id']}: {ev['status']} ({ev['turns']} turns)", file=sys.stderr)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--question", help="ask this instead of the generated task (no gold check)")
    ap.add_argument("--search", default="local", choices=["local", "tavily", "web", "retriever"])
    args = ap.parse_args()

    world = World.generate(seed=7, n_categories=2, entities_per_category=8)
    corpus = world.write_corpus(DEMO_DIR / "corpus.jsonl")
    task = world.list_task(0)
    question = args.question or task.query

    server = None
    if os.environ.get("OPENAI_BASE_URL"):
        cfg = WideSeekConfig(search=args.search, corpus=corpus, index_dir=DEMO_DIR / "index")
        print(f"Model: {cfg.model} at {cfg.base_url}", file=sys.stderr)
    else:
        from langgraph_wideseek.testing import FakeOpenAIServer, LatencyModel, WideSeekPolicy

        print(
            "No OPENAI_BASE_URL set: using the built-in SIMULATED model server (a scripted policy, not an "
            "LLM).\n"
            "Set OPENAI_BASE_URL to your vLLM server to run the real model.",
            file=sys.stderr,
        )
        server = FakeOpenAIServer(WideSeekPolicy(think_tokens=40), latency=LatencyModel(base=0.05))
        await server.start()
        cfg = WideSeekConfig(
            base_url=server.base_url,
            model="simulated",
            search="local",
            corpus=corpus,
            index_dir=DEMO_DIR / "index",
        )
    try:
        print(f"\nTask:\n{question}\n", file=sys.stderr)
        async with WideSeekGraph(cfg) as graph:
            result = await graph.arun(question, on_event=progress)
    finally:
        if server is not None:
            await server.stop()

    print(result.answer if result.answer is not None else "(no answer)")
    u = result.usage
    print(
        f"\n{u.subagents} subagents, {u.calls} model calls, {u.prompt_tokens} prompt + {u.completion_tokens} "
        f"completion tokens; status {result.status}",
        file=sys.stderr,
    )
    for err in result.errors:
        print(f"  error: {err}", file=sys.stderr)
    if args.question:
        return 0 if result.status == "ok" else 1
    # Score with the exact WideSearch scorer (the synthetic task's columns need no LLM judge).
    from langgraph_wideseek.eval import ExactJudge, load_tasks, score_response

    tasks_file, gold_dir = world.write_tasks(DEMO_DIR / "tasks", [task])
    scored = await score_response(load_tasks(tasks_file, gold_dir)[0], result.answer, judge=ExactJudge())
    print(
        f"WideSearch score: item F1 {scored.item_f1:.3f}, row F1 {scored.row_f1:.3f}, "
        f"success {scored.success}",
        file=sys.stderr,
    )
    if not os.environ.get("OPENAI_BASE_URL") and not scored.success:
        return 1  # the simulation is deterministic: anything short of a perfect table is a bug
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
