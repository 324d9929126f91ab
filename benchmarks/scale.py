"""Scale: many concurrent rollouts (each a lead plus 10 subagents) in one process on this machine.

Each level runs in a fresh child process so its memory numbers are its own: ``N`` rollouts of a named task
with 10 entities start together (lead -> one wave of 10 subagents x 3 calls -> answer: 32 model calls each)
against the simulated endpoint in its own process (fixed time per call, no slowdown with load, so any latency
inflation is the client's). Reported per level: throughput (rollouts/s, calls/s), latency inflation (mean
rollout time over the single-rollout time), errored and wrong rollouts (every answer is checked against its
gold table), client CPU per call, and peak memory per rollout (peak RSS during the run minus RSS before it,
over N). The graph runs twice: with CPython's default garbage-collector settings, and after
``runtime.tune_gc()``.

Run alone: ``python -m benchmarks.scale [--quick]``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time
from typing import Any

from .harness import ROOT, ServerProcess, cli, peak_rss_bytes, reset_peak_rss, rss_bytes, write_result

LEVELS = [1, 10, 100, 1000]
ENTITIES = 10
SCORED = 20  # answers per level run through the real WideSearch scorer
# the graph with the interpreter's default garbage collector, and after langgraph_wideseek.runtime.tune_gc()
KINDS = ["raw_protocol", "wideseek_graph", "wideseek_graph+tune_gc"]


async def _level(kind: str, base_url: str, n: int) -> dict[str, Any]:
    from langgraph_wideseek.testing import World

    from .clients import Scorer, make_runner
    from .protocol import MemoryCorpus

    world = World.generate(seed=13, n_categories=1, entities_per_category=ENTITIES)
    task = world.named_task(0, ENTITIES)
    corpus = MemoryCorpus(world.corpus_records())
    tuned = kind.endswith("+tune_gc")
    run, close = await make_runner(kind.removesuffix("+tune_gc"), base_url, corpus)
    await run(task.query)  # warm-up: imports, graph compile, connection pool
    if tuned:  # what a rollout process does at start-up (langgraph_wideseek.runtime)
        from langgraph_wideseek.runtime import tune_gc

        tune_gc()
    gc.collect()
    base_rss = rss_bytes()
    reset_peak_rss()
    durations: list[float] = []

    async def one() -> Any:
        t = time.perf_counter()
        try:
            return await run(task.query)
        finally:
            durations.append(time.perf_counter() - t)

    cpu0, t0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = peak_rss_bytes()
    exceptions = [r for r in results if isinstance(r, BaseException)]
    done = [r for r in results if not isinstance(r, BaseException)]
    await close()
    scorer = Scorer([task])  # the real scorer on a sample (all answers are also checked against gold above)
    f1 = await scorer.min_item_f1(task.instance_id, [r.answer for r in done[:SCORED]])
    scorer.close()
    calls = sum(r.calls for r in done)
    return {
        "rollouts": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "calls": calls,
        "rollouts_per_s": n / wall,
        "calls_per_s": calls / wall,
        "mean_rollout_s": sum(durations) / len(durations),
        "max_rollout_s": max(durations),
        "errored": len(exceptions) + sum(1 for r in done if r.errors or r.status != "ok"),
        "wrong_tables": sum(1 for r in done if task.mismatches(r.answer)),
        "first_error": (
            str(exceptions[0]) if exceptions else next((r.errors[0] for r in done if r.errors), None)
        ),
        "cpu_ms_per_call": 1000 * cpu / max(calls, 1),
        "item_f1_min_sampled": f1,
        "rss_before_mb": base_rss / 2**20,
        "peak_rss_mb": peak / 2**20,
        "mem_per_rollout_mb": (peak - base_rss) / 2**20 / n,
    }


def _child(kind: str, base_url: str, n: int) -> None:
    print(json.dumps(asyncio.run(_level(kind, base_url, n))))


def measure(kind: str, base_url: str, n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--child", kind, base_url, str(n)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        return {"rollouts": n, "error": " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict[str, Any]:
    levels = LEVELS[:3] if quick else LEVELS
    latency = {"base": 0.1, "per_token": 0.002, "fixed_tokens": 200}  # 0.5 s per call
    out: dict[str, Any] = {}
    for kind in KINDS:
        rows = []
        with ServerProcess(policy="wideseek", think_tokens=64, **latency) as srv:
            for n in levels:
                cpu0 = srv.cpu_seconds()
                r = measure(kind, srv.base_url, n)
                r["server_cpu_s"] = srv.cpu_seconds() - cpu0
                rows.append(r)
                print(
                    f"  {kind:15s} {n:5d} rollouts: "
                    + (
                        r["error"]
                        if "error" in r
                        else f"{r['wall_s']:.1f} s, {r['calls_per_s']:.0f} calls/s, "
                        f"mean rollout {r['mean_rollout_s']:.2f} s, "
                        f"errors {r['errored']}, wrong {r['wrong_tables']}, {r['mem_per_rollout_mb']:.2f} "
                        f"MB/rollout"
                    ),
                    flush=True,
                )
        single = next(
            (r["mean_rollout_s"] for r in rows if r.get("rollouts") == 1 and "error" not in r), None
        )
        for r in rows:
            if single and "error" not in r:
                r["latency_inflation"] = r["mean_rollout_s"] / single
        out[kind] = rows
    return {
        "levels": levels,
        "entities": ENTITIES,
        "latency": latency,
        "seconds_per_call": latency["base"] + latency["fixed_tokens"] * latency["per_token"],
        "results": out,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    args = cli("Scale: throughput, latency and memory of many concurrent rollouts.")
    data = run(args.quick)
    print(write_result("scale", {"quick": args.quick, **data}))
    if not args.no_report:
        from .report import render

        render()


if __name__ == "__main__":
    main()
