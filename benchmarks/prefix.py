"""Prefix sharing: how much of each request's prompt repeats an earlier request of the same role.

vLLM's automatic prefix cache skips prefill for the leading blocks of a prompt it has already seen. The
simulated endpoint tracks this the same way (64-byte blocks, hashes chained over the prefix, one cache per
role; see ``PrefixTracker``) over the rendered prompt. Several list tasks run concurrently through the graph
with page summarisation on, so all three roles (lead, subagent, summariser) appear; the raw-aiohttp loop is
shown for comparison. A request's first turn can only share the system prompt, tools and (for subagents) the
main task; later turns should share nearly everything before the newest messages, unless earlier messages
are re-serialised differently from one turn to the next.

Run alone: ``python -m benchmarks.prefix [--quick]``.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from .harness import ServerProcess, cli, percentile, write_result


async def _rollouts(kind: str, base_url: str, n_tasks: int) -> None:
    from langgraph_wideseek.testing import World

    from .clients import make_runner
    from .protocol import MemoryCorpus

    world = World.generate(seed=17, n_categories=n_tasks, entities_per_category=12)
    corpus = MemoryCorpus(world.corpus_records())
    extra = {"summarize_pages": True} if kind == "wideseek_graph" else {}
    run, close = await make_runner(kind, base_url, corpus, **extra)
    tasks = [world.list_task(i) for i in range(n_tasks)]
    results = await asyncio.gather(*(run(t.query) for t in tasks))
    await close()
    from .clients import Scorer

    scorer = Scorer(tasks)
    f1 = [await scorer.item_f1(t.instance_id, r.answer) for t, r in zip(tasks, results)]
    scorer.close()
    wrong = [t.instance_id for t, r, f in zip(tasks, results, f1) if t.mismatches(r.answer) or f != 1.0]
    if wrong:
        raise RuntimeError(f"prefix benchmark rollouts gave wrong tables: {wrong}")


def summarize(samples: list[list[Any]]) -> dict[str, Any]:
    by_role: dict[str, dict[str, Any]] = {}
    for role in sorted({s[0] for s in samples}):
        rows = [s for s in samples if s[0] == role]
        fr = [s[2] / s[1] for s in rows if s[1]]
        first = [s[2] / s[1] for s in rows if s[3] == 0 and s[1]]
        later = [s[2] / s[1] for s in rows if s[3] > 0 and s[1]]
        total, shared = sum(s[1] for s in rows), sum(s[2] for s in rows)
        # reuse efficiency: shared / what was reusable (block rounding keeps this a little under 1 at best);
        # the role's very first request has nothing before it and is left out
        eff = [min(1.0, s[2] / s[4]) for s in rows[1:] if s[4] >= 256]
        by_role[role] = {
            "requests": len(rows),
            "mean_prompt_bytes": total / len(rows),
            "mean_fraction": statistics.mean(fr),
            "p10_fraction": percentile(fr, 0.1),
            "median_fraction": statistics.median(fr),
            "first_turn_requests": len(first),
            "first_turn_mean_fraction": statistics.mean(first) if first else None,
            "later_turn_requests": len(later),
            "later_turn_mean_fraction": statistics.mean(later) if later else None,
            "bytes_fraction": shared / total if total else 0.0,
            "mean_efficiency": statistics.mean(eff) if eff else None,
            "min_efficiency": min(eff) if eff else None,
        }
    return by_role


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def run(quick: bool = False) -> dict[str, Any]:
    n_tasks = 2 if quick else 4
    out = {}
    for kind in ["wideseek_graph", "raw_protocol"]:
        with ServerProcess(policy="wideseek", think_tokens=64, track_prefix=True) as srv:
            asyncio.run(_rollouts(kind, srv.base_url, n_tasks))
            out[kind] = summarize(srv.stats()["prefix_samples"])
        for role, r in out[kind].items():
            print(
                f"  {kind:15s} {role:10s} {r['requests']:4d} requests: {100 * r['mean_fraction']:.1f}% of "
                f"each "
                f"prompt reused on average ({100 * r['bytes_fraction']:.1f}% of all bytes); efficiency "
                f"{_pct(r['mean_efficiency'])} (min {_pct(r['min_efficiency'])})",
                flush=True,
            )
    return {"tasks": n_tasks, "block_bytes": 64, "results": out}


def main() -> None:
    args = cli("Prefix sharing per role.")
    data = run(args.quick)
    print(write_result("prefix", {"quick": args.quick, **data}))
    if not args.no_report:
        from .report import render

        render()


if __name__ == "__main__":
    main()
