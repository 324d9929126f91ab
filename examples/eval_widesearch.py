"""Evaluate the WideSeek graph on WideSearch tasks and print Avg@N / Max@N like the papers report.

    python examples/eval_widesearch.py                           # offline: 4 sample tasks, simulated model
    OPENAI_BASE_URL=http://localhost:8000/v1 WIDESEEK_MODEL=RLinf/WideSeek-R1-4b \\
        python examples/eval_widesearch.py --tasks hf --samples 4 --search web
    . wideseek-sim/env.sh    # after `wideseek simulate`: its server, over its world's corpus and tasks
    python examples/eval_widesearch.py --tasks wideseek-sim/tasks.jsonl

Offline (no ``OPENAI_BASE_URL``), a local OpenAI-compatible fake server plays the model: the lead sends one
subagent, then answers with the task's gold table, sometimes with a few rows missing, so the scores are not
trivial. Everything else is real: the LangGraph graph, the HTTP client, the runner (resumable: run it twice
and the second run does no agent calls), the exact WideSearch scorer and the report. Set
``WIDESEEK_JUDGE_BASE_URL`` and ``WIDESEEK_JUDGE_MODEL`` to score with a model judge instead of the exact one.
The same run from the command line is ``wideseek eval --tasks ... --gold ... --out ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
from pathlib import Path

from langgraph_wideseek import WideSeekConfig, WideSeekGraph
from langgraph_wideseek.eval import ExactJudge, OpenAIJudge, load_tasks
from langgraph_wideseek.eval.runner import run_eval
from langgraph_wideseek.eval.table import to_markdown
from langgraph_wideseek.testing import FakeOpenAIServer, Reply, first_user_text, is_lead, turn_index

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "widesearch"


def simulated_model(tasks, seed: int = 0):
    """A stand-in model: delegate once, then answer with the gold table (a quarter of the time, with rows
    missing)."""
    rng = random.Random(seed)

    def policy(body: dict) -> Reply:
        text = first_user_text(body)
        task = next(t for t in tasks if t.query in text)
        if not is_lead(body):
            return Reply(content="Report: I collected the rows you asked for.")
        if turn_index(body) == 0:
            return Reply(
                tool_calls=[
                    {
                        "name": "create_sub_agents",
                        "arguments": {
                            "sub_agents": [{"prompt": f"Collect every row for: {task.query[:80]}"}]
                        },
                    }
                ]
            )
        rows = [list(r) for r in task.gold.rows()]
        if rng.random() < 0.25:
            rows = rows[: max(1, len(rows) * 2 // 3)]
        return Reply(content="Here is the table.\n\n" + to_markdown(list(task.required), rows))

    return policy


def judge_from_env(out: Path):
    url, model = os.environ.get("WIDESEEK_JUDGE_BASE_URL"), os.environ.get("WIDESEEK_JUDGE_MODEL")
    if url and model:
        return OpenAIJudge(
            url, model, os.environ.get("WIDESEEK_JUDGE_API_KEY"), cache_dir=out / "judge_cache"
        )
    return ExactJudge()


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=str(SAMPLE / "widesearch_sample.jsonl"), help="JSONL file or 'hf'")
    ap.add_argument("--gold", default=None, help="gold CSV folder (default: beside the tasks file)")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--search", default="local", choices=["local", "tavily", "web", "retriever"])
    ap.add_argument("--out", default=".wideseek-eval")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = load_tasks(args.tasks, args.gold, limit=args.limit)
    judge = judge_from_env(out)
    corpus = out / "corpus.jsonl"  # the local backend needs a corpus; the simulated model never searches it
    corpus.write_text(
        json.dumps({"url": "https://example.org", "title": "placeholder", "text": "empty"}) + "\n"
    )

    server = None
    if os.environ.get("OPENAI_BASE_URL"):
        # Local search reads WIDESEEK_CORPUS when set (`wideseek simulate` sets it to its world's corpus).
        local = os.environ.get("WIDESEEK_CORPUS") or corpus
        cfg = WideSeekConfig(search=args.search, corpus=local if args.search == "local" else None)
    else:
        server = FakeOpenAIServer(simulated_model(tasks))
        await server.start()
        cfg = WideSeekConfig(base_url=server.base_url, model="simulated", search="local", corpus=corpus)
    graph = WideSeekGraph(cfg)
    try:
        summary = await run_eval(
            tasks, graph.arun, judge, out, samples=args.samples, concurrency=args.concurrency
        )
    finally:
        await graph.aclose()
        if isinstance(judge, OpenAIJudge):
            await judge.aclose()
        if server is not None:
            await server.stop()

    n = summary.samples
    for group, g in [("all", summary.pooled), *summary.by_language.items()]:
        m = g.metrics
        print(
            f"{group:>3}: item F1 Avg@{n} {m['item_f1'].avg:5.1f} Max@{n} {m['item_f1'].max:5.1f} | "
            f"row F1 Avg@{n} {m['row_f1'].avg:5.1f} | success Avg@{n} {m['success'].avg:5.1f} "
            f"Pass@{n} {m['success'].max:5.1f}  ({g.tasks} tasks)"
        )
    print(f"judge: {summary.judge}; failed runs: {summary.failed_trials}; report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
