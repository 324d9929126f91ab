"""The graph floor: the LangGraph graph, its state, one agent turn, and the records a run produces.

- :mod:`.builder`: :class:`WideSeekGraph` (lead, subagent fan-out, collect, finalize);
- :mod:`.state`: the state schemas and their reducers, declared once;
- :mod:`.turns`: one model call of either role, and per-turn trajectory records;
- :mod:`.trajectory`: the trajectory records (the public JSONL format) and the :class:`Status` enum;
- :mod:`.result`: :class:`WideSeekResult` and :class:`Usage`;
- :mod:`.answer`: the fenced table and ``\\boxed{}`` readers of the final answer.

Importing the records does not import LangGraph; :class:`WideSeekGraph` is loaded on first access.
"""

from typing import TYPE_CHECKING, Any

from .result import Usage, WideSeekResult
from .trajectory import AgentTrajectory, Role, Status, Trajectory, TurnRecord

if TYPE_CHECKING:
    from .builder import WideSeekGraph

__all__ = [
    "AgentTrajectory",
    "Role",
    "Status",
    "Trajectory",
    "TurnRecord",
    "Usage",
    "WideSeekGraph",
    "WideSeekResult",
]


def __getattr__(name: str) -> Any:  # the builder pulls in LangGraph; import it only when asked for
    if name == "WideSeekGraph":
        from .builder import WideSeekGraph

        return WideSeekGraph
    raise AttributeError(name)
