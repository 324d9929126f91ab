"""Per-run counts of tool calls and of the calls that failed, per tool.

A run's counts tell the caller what the answer rests on: a run whose every search failed produced an answer
from no evidence at all, and ``wideseek run`` says so with its exit status. The counter of the current run is
held in a context variable that :meth:`WideSeekGraph.arun` sets; LangGraph runs every node of a run in tasks
created from that context, so all subagents of the run add to the same counter, and runs in other tasks
(concurrent eval trials) keep their own. Outside such a run (Studio, a bare ``ainvoke``) nothing is counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pydantic import BaseModel

__all__ = ["ToolCount", "record", "tallying"]


class ToolCount(BaseModel):
    """``calls`` of one tool in a run; ``failed``: calls whose every item failed; ``items`` and
    ``failed_items``: the queries (search) or URLs (access) in them."""

    calls: int = 0
    failed: int = 0
    items: int = 0
    failed_items: int = 0


_CURRENT: ContextVar[dict[str, ToolCount] | None] = ContextVar("wideseek_tool_tally", default=None)


def record(tool: str, items: int, failed_items: int) -> None:
    """Count one call of ``tool`` with ``items`` items, ``failed_items`` of which failed."""
    tally = _CURRENT.get()
    if tally is None:
        return
    count = tally.setdefault(tool, ToolCount())
    count.calls += 1
    count.items += items
    count.failed_items += failed_items
    count.failed += bool(items) and failed_items >= items


@contextmanager
def tallying() -> Iterator[dict[str, ToolCount]]:
    """Count the tool calls made inside the block (in this task and the tasks it starts)."""
    tally: dict[str, ToolCount] = {}
    token = _CURRENT.set(tally)
    try:
        yield tally
    finally:
        _CURRENT.reset(token)
