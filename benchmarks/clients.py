"""Rollout runners over the synthetic world: the WideSeek graph, and the raw-aiohttp floor.

``make_runner(kind, base_url, corpus, ...)`` returns ``(run, close)`` where ``await run(query)`` plays one
rollout and returns a :class:`Outcome`. Both runners get the same in-memory corpus (``MemoryCorpus``) unless a
benchmark passes the real local index, so differences between them are orchestration, not tool cost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .protocol import MemoryCorpus, RawClient


@dataclass
class Outcome:
    answer: str | None
    calls: int
    errors: list[str] = field(default_factory=list)
    status: str = "ok"


Runner = Callable[[str], Awaitable[Outcome]]


async def make_runner(
    kind: str, base_url: str, corpus: Any, *, max_subagents: int = 10, max_inflight: int = 256, **cfg: Any
) -> tuple[Runner, Callable[[], Awaitable[None]]]:
    if kind == "raw_protocol":
        import aiohttp

        if not isinstance(corpus, MemoryCorpus):
            raise TypeError("the raw protocol loop reads a MemoryCorpus")
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        client = RawClient(
            session, base_url, "m", corpus, max_inflight=max_inflight, max_subagents=max_subagents
        )

        async def run_raw(query: str) -> Outcome:
            r = await client.rollout(query)
            return Outcome(r.answer, r.calls, r.errors, "ok" if not r.errors else "failed")

        return run_raw, session.close

    if kind == "wideseek_graph":
        from langgraph_wideseek import WideSeekConfig, WideSeekGraph

        config = WideSeekConfig(
            base_url=base_url,
            model="m",
            max_subagents=max_subagents,
            max_inflight_requests=max_inflight,
            **{"summarize_pages": False, **cfg},
        )
        graph = WideSeekGraph(
            config, search=corpus, reader=corpus, subagent_subgraph=False
        )  # the rollout mode

        async def run_graph(query: str) -> Outcome:
            r = await graph.arun(query)
            return Outcome(r.answer, r.usage.calls, list(r.errors), r.status)

        return run_graph, graph.aclose

    raise ValueError(f"unknown runner {kind!r}")


class Scorer:
    """The real WideSearch scorer (``langgraph_wideseek.eval``) over synthetic tasks: every benchmark checks
    that speed never cost correctness (a correct run scores item F1 = 1.0; no judge is needed, as the world's
    columns use exact_match / number_near / date_near / url_match only)."""

    def __init__(self, tasks: list[Any]) -> None:
        import tempfile

        from langgraph_wideseek.eval import load_tasks
        from langgraph_wideseek.testing import write_tasks

        self._dir = tempfile.TemporaryDirectory(prefix="wideseek-bench-")
        jsonl, gold = write_tasks(tasks, self._dir.name)
        self.tasks = {t.instance_id: t for t in load_tasks(str(jsonl), gold_dir=str(gold))}

    async def item_f1(self, instance_id: str, answer: str | None) -> float:
        from langgraph_wideseek.eval import score_response

        trial = await score_response(self.tasks[instance_id], answer, judge=None)
        return float(trial.item_f1)

    async def min_item_f1(self, instance_id: str, answers: list[str | None]) -> float:
        return min([await self.item_f1(instance_id, a) for a in answers] or [float("nan")])

    def close(self) -> None:
        self._dir.cleanup()
