"""Shared by the examples: your model server if OPENAI_BASE_URL is set, else the simulated one."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph_wideseek import WideSeekConfig
from langgraph_wideseek.testing import World

DEMO_DIR = Path(os.environ.get("WIDESEEK_DEMO_DIR", ".wideseek-demo"))


@asynccontextmanager
async def demo_config(world: World, **overrides) -> AsyncIterator[WideSeekConfig]:
    corpus = world.write_corpus(DEMO_DIR / "corpus.jsonl")
    base = dict(search="local", corpus=corpus, index_dir=DEMO_DIR / "index", **overrides)
    if os.environ.get("OPENAI_BASE_URL"):
        yield WideSeekConfig(**base)
        return
    from langgraph_wideseek.testing import AssistantPolicy, FakeOpenAIServer, WideSeekPolicy

    print(
        "No OPENAI_BASE_URL set: using the built-in SIMULATED model server (a scripted policy).",
        file=sys.stderr,
    )
    # one server plays both models of examples/langgraph_app.py, as one vLLM server would: every WideSeek role
    # the scripted policy, anything else (an agent holding the graph as a tool) the general assistant
    policy = WideSeekPolicy(others=AssistantPolicy())
    async with FakeOpenAIServer(policy) as server:
        yield WideSeekConfig(base_url=server.base_url, model="simulated", **base)
