"""Embed WideSeek in a larger LangGraph / LangChain application, three ways.

    python examples/langgraph_app.py

1. As a subgraph node sharing keys: a parent graph routes a question to the compiled WideSeek graph and turns
   its table into CSV afterwards (the parent shares the keys ``question``, ``answer`` and ``table``).
2. As a node of a chat app (``MessagesState``): the last human message is the question, and the graph adds
   exactly one AI message with the answer; its own lead and subagent messages stay inside.
3. As one tool of a LangChain agent: ``WideSeekGraph.as_tool()`` handed to ``langchain.agents.create_agent``
   (the ``studio`` extra installs ``langchain``).

With ``OPENAI_BASE_URL`` set, every model call goes to your server; without it, to the simulated one.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys

from _endpoint import demo_config
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from typing_extensions import TypedDict

from langgraph_wideseek import ChatVLLM, WideSeekGraph
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
        graph = wideseek.compile()

        # 1. a node of a parent graph that shares the question / answer / table keys
        app = StateGraph(AppState)
        app.add_node("wideseek", graph)
        app.add_node("to_csv", to_csv)
        app.add_edge(START, "wideseek")
        app.add_edge("wideseek", "to_csv")
        app.add_edge("to_csv", END)
        out = await app.compile().ainvoke({"question": task.query})
        print("CSV from the parent graph:\n" + out["csv"])

        # 2. a node of a chat app: messages in, one AI message out
        chat = StateGraph(MessagesState)
        chat.add_node("wideseek", graph)
        chat.add_edge(START, "wideseek")
        chat.add_edge("wideseek", END)
        talk = await chat.compile().ainvoke({"messages": [HumanMessage(task.query)]})
        print(f"Chat app: {len(talk['messages'])} messages, the last from the {talk['messages'][-1].type}")

        # 3. one tool of a LangChain agent (here the agent and WideSeek share one model server)
        agent = create_agent(ChatVLLM.from_config(cfg), tools=[wideseek.as_tool()])
        reply = await agent.ainvoke({"messages": [HumanMessage(f'Use wide_search to answer "{task.query}"')]})
        called = [c["name"] for m in reply["messages"] for c in getattr(m, "tool_calls", None) or []]
        tool_answer = next((m.text for m in reply["messages"] if m.type == "tool"), "")
        print(f"Agent called {called}; the tool answered:\n{tool_answer}")
        await wideseek.aclose()
    return 0 if out["csv"] and called == ["wide_search"] and "|" in tool_answer else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
