"""Embed WideSeek in a larger LangGraph / LangChain application, two ways.

    python examples/langgraph_app.py

1. As a subgraph node: a parent graph routes broad questions to the compiled WideSeek graph and turns its
   table into CSV afterwards. The parent shares the keys ``question``, ``answer`` and ``table`` with it.
2. As a tool: ``WideSeekGraph.as_tool()`` gives a LangChain tool that any tool-calling agent can use.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from typing import TypedDict

from _endpoint import demo_config
from langgraph.graph import END, START, StateGraph

from langgraph_wideseek import WideSeekGraph
from langgraph_wideseek.testing import World


class AppState(TypedDict, total=False):
    question: str
    answer: str | None
    table: list[dict[str, str]] | None
    csv: str


def to_csv(state: AppState) -> AppState:
    rows = state.get("table") or []
    if not rows:
        return {"csv": ""}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return {"csv": buf.getvalue()}


async def main() -> int:
    world = World.generate(seed=3, n_categories=1, entities_per_category=5)
    task = world.named_task(0, 3)
    async with demo_config(world) as cfg:
        wideseek = WideSeekGraph(cfg)

        # 1. the compiled graph as a node of a parent graph
        app = StateGraph(AppState)
        app.add_node("wideseek", wideseek.compile())
        app.add_node("to_csv", to_csv)
        app.add_edge(START, "wideseek")
        app.add_edge("wideseek", "to_csv")
        app.add_edge("to_csv", END)
        out = await app.compile().ainvoke({"question": task.query})
        print("CSV from the parent graph:\n" + out["csv"])

        # 2. the whole system as one LangChain tool
        tool = wideseek.as_tool()
        print(f"Tool {tool.name!r}: {tool.description[:80]}...", file=sys.stderr)
        answer = await tool.ainvoke({"question": task.query})
        print("Tool answer:\n" + answer)
        await wideseek.aclose()
    return 0 if out["csv"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
