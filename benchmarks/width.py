"""Width scaling: wall time of one task as the number of parallel subagents grows, work per subagent fixed.

One named task of ``w`` entities makes the lead send ``w`` subagents in a single wave (``max_subagents`` is
raised to 64 for this); each subagent does the same three model calls (search, access, report) and every
call costs the simulated endpoint the same time (``fixed_tokens``), so in an ideal client the wall time does
not depend on ``w``. Two endpoints: an unsaturated one (time per call independent of load, isolating the
client) and one that slows each decode step by 1% per extra request in flight (continuous batching), which
shows what a real server adds. The raw-aiohttp protocol loop is the floor in both.

Run alone: ``python -m benchmarks.width [--quick]``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from .clients import Scorer, make_runner
from .harness import ServerProcess, cli, write_result
from .protocol import MemoryCorpus

WIDTHS = [1, 2, 5, 10, 20, 64]
RUNNERS = ["raw_protocol", "wideseek_graph"]


async def _measure(base_url: str, srv: ServerProcess, reps: int) -> dict[str, Any]:
    from langgraph_wideseek.testing import World

    world = World.generate(seed=9, n_categories=1, entities_per_category=max(WIDTHS))
    corpus = MemoryCorpus(world.corpus_records())
    scorer = Scorer([world.named_task(0, w) for w in WIDTHS])
    out: dict[str, Any] = {}
    for kind in RUNNERS:
        run, close = await make_runner(kind, base_url, corpus, max_subagents=max(WIDTHS))
        await run(world.named_task(0, 2).query)  # warm-up: connections, lazy imports, graph compile
        rows = []
        for w in WIDTHS:
            task = world.named_task(0, w)
            walls, wrong, errors, answers = [], 0, 0, []
            srv.reset()
            for _ in range(reps):
                t0 = time.perf_counter()
                r = await run(task.query)
                walls.append(time.perf_counter() - t0)
                wrong += bool(task.mismatches(r.answer))
                errors += bool(r.errors) or r.status != "ok"
                answers.append(r.answer)
            stats = srv.stats()
            rows.append(
                {
                    "width": w,
                    "wall_s": statistics.median(walls),
                    "walls": walls,
                    "calls": stats["requests"] // reps,
                    "peak_inflight": stats["peak_inflight"],
                    "wrong_tables": wrong,
                    "errors": errors,
                    "item_f1_min": await scorer.min_item_f1(task.instance_id, answers),
                }
            )
            print(
                f"    {kind:15s} width {w:3d}: {statistics.median(walls):.3f} s "
                f"(peak in flight {stats['peak_inflight']})",
                flush=True,
            )
        base = rows[0]["wall_s"]
        for r in rows:
            r["vs_width_1"] = r["wall_s"] / base
            r["added_s"] = r["wall_s"] - base
        out[kind] = rows
        await close()
    scorer.close()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    # Full run: about 1 s per call (250 tokens at 4 ms), on the fast side of a 4B reasoning model's turn on a
    # busy vLLM server, so client overhead shows rather than hides. --quick: 0.15 s per call.
    per_token = 0.0005 if quick else 0.004
    latency = {"base": 0.05, "per_token": per_token, "fixed_tokens": 200 if quick else 250}
    reps = 1 if quick else 2
    endpoints = {"unsaturated": {}, "batching": {"per_token_inflight": per_token * 0.01}}
    results = {}
    for name, extra in endpoints.items():
        print(f"  endpoint: {name}", flush=True)
        with ServerProcess(
            policy="wideseek", think_tokens=100, max_per_wave=max(WIDTHS), **latency, **extra
        ) as srv:
            results[name] = asyncio.run(_measure(srv.base_url, srv, reps))
    call_s = latency["base"] + latency["fixed_tokens"] * per_token
    return {
        "widths": WIDTHS,
        "latency": latency,
        "endpoints": endpoints,
        "seconds_per_call": call_s,
        "reps": reps,
        "results": results,
    }


def main() -> None:
    args = cli("Width scaling: wall time vs number of parallel subagents.")
    data = run(args.quick)
    print(write_result("width", {"quick": args.quick, **data}))
    if not args.no_report:
        from .report import render

        render()


if __name__ == "__main__":
    main()
