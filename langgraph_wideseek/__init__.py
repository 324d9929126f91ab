"""langgraph-wideseek: the WideSeek-R1 lead/subagent system as a LangGraph graph.

    from langgraph_wideseek import WideSeekGraph, WideSeekConfig
    result = await WideSeekGraph(WideSeekConfig(corpus="corpus.jsonl")).arun("List every ...")

``ChatVLLM``, the LangChain chat model for vLLM's OpenAI server, is exported here too. What is in
``__all__`` is the public surface (``tests/core/test_exports.py`` holds it); the rest is not promised.

The package is built in floors, each importing only from the floors below it (docs/architecture.md):
``config`` and ``errors``; ``runtime`` (async helpers); ``model`` (the OpenAI-compatible client); ``tools``;
``graph``; ``eval``; and ``cli`` on top. ``testing`` is the simulated world for tests, benchmarks and demos.
"""

from typing import TYPE_CHECKING, Any

from .config import WideSeekConfig
from .errors import WideSeekError
from .graph.result import Usage, WideSeekResult
from .graph.trajectory import AgentTrajectory, Status, Trajectory, TurnRecord

if TYPE_CHECKING:
    from .graph.builder import WideSeekGraph
    from .model.chat import ChatVLLM

__all__ = [
    "AgentTrajectory",
    "ChatVLLM",
    "Status",
    "Trajectory",
    "TurnRecord",
    "Usage",
    "WideSeekConfig",
    "WideSeekError",
    "WideSeekGraph",
    "WideSeekResult",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # the graph and the model pull in LangChain; import them when asked for
    if name == "WideSeekGraph":
        from .graph.builder import WideSeekGraph

        return WideSeekGraph
    if name == "ChatVLLM":
        from .model.chat import ChatVLLM

        return ChatVLLM
    raise AttributeError(name)
