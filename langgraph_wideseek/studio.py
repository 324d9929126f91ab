"""The graph ``langgraph dev`` serves (see langgraph.json), configured from the environment.

Set ``OPENAI_BASE_URL``, ``WIDESEEK_MODEL`` and a backend (``WIDESEEK_CORPUS=corpus.jsonl`` for the local
index, ``TAVILY_API_KEY`` with ``WIDESEEK_SEARCH=tavily``, ...) in the environment or in ``.env`` before
``langgraph dev``. Studio supplies its own checkpointer, so the graph is compiled without one.
"""

from __future__ import annotations

# Absolute imports: `langgraph dev` loads this file by path, outside its package, so relative imports fail.
from langgraph_wideseek.config import WideSeekConfig
from langgraph_wideseek.graph import WideSeekGraph


def make_graph():
    cfg = WideSeekConfig()
    try:
        return WideSeekGraph(cfg).compile()  # subagent subgraphs: Studio shows every turn
    except ValueError as e:  # BackendConfigError, CorpusError: say which variables to set
        raise RuntimeError(
            f"cannot build the WideSeek graph for Studio: {e}. Set WIDESEEK_CORPUS (local search), "
            "or WIDESEEK_SEARCH=tavily with TAVILY_API_KEY, or WIDESEEK_SEARCH=web, or "
            "WIDESEEK_SEARCH=retriever "
            "with WIDESEEK_RETRIEVER_URL, in the environment before `langgraph dev`."
        ) from e


graph = make_graph()
