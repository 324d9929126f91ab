"""Graph state: the lead's state, and the subagent subgraph's input, state and output.

Context isolation is structural: a subagent's messages live only in its own subgraph state, and the only keys
that flow back to the lead are its report and its trajectory.

Each key's reducer is declared once, in its ``Annotated`` type below. LangGraph applies them between graph
steps; :func:`apply_update` applies the same declarations where the graph runs steps itself (a subagent's
turn, and the one-node subagent mode), so the two paths cannot disagree about how state is merged.

Everything in the state is plain data that any checkpointer stores without registering our types: statuses
are :class:`~.trajectory.Status` *values* (plain strings), trajectories are ``to_plain`` dicts, which
:meth:`WideSeekGraph.result_from_state` turns back into models.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from functools import cache
from typing import Annotated, Any, TypeVar, cast, get_args, get_origin, get_type_hints

from langchain_core.messages import AnyMessage
from typing_extensions import TypedDict  # typing's TypedDict breaks LangGraph's JSON schemas on Python 3.11

__all__ = [
    "RESET",
    "LeadInput",
    "LeadOutput",
    "LeadState",
    "PendingCall",
    "Report",
    "SubagentInput",
    "SubagentOutput",
    "SubagentState",
    "ToolCallRef",
    "TurnMeta",
    "apply_update",
    "resettable",
]

RESET = "__reset__"


def resettable(left: list[Any] | None, right: list[Any] | str) -> list[Any]:
    """Append; writing :data:`RESET` empties the list (a new wave, or a new run on a checkpointed thread)."""
    if isinstance(right, str) and right == RESET:
        return []
    return (left or []) + list(right)


class Report(TypedDict):
    """What one subagent hands back to the lead."""

    index: int
    agent_id: str
    subtask: str
    status: str  # a finished agent's Status value: "ok" or "failed"
    report: str
    error: str | None
    tool_errors: list[str]


class TurnMeta(TypedDict):
    """What a node keeps of one model call until the trajectory is assembled (messages by count, not copy)."""

    turn: int
    n_messages: int
    reply_index: int


class ToolCallRef(TypedDict):
    id: str
    name: str | None


class PendingCall(TypedDict):
    """The lead's tool call being served: what ``collect`` or ``lead_feedback`` answers on the next step.

    ``call`` is the first call of the turn (``None`` for an empty reply, answered with a user nudge),
    ``others`` the further calls of the same turn (answered "only the first call runs"), ``subtasks`` the
    validated prompts (empty when ``error`` says why the call was rejected), ``notes`` what the lead is told
    about skipped or dropped entries, and ``wave`` the wave the subtasks run in.
    """

    call: ToolCallRef | None
    others: list[ToolCallRef]
    subtasks: list[str]
    notes: list[str]
    error: str | None
    wave: int


class LeadInput(TypedDict, total=False):
    """What a run takes: the ``question``, or ``messages`` whose last human message is the question (as a
    node of a ``MessagesState`` parent graph); ``rollout_id`` names the trajectory."""

    question: str
    messages: list[AnyMessage]
    rollout_id: str


class LeadOutput(TypedDict, total=False):
    """What a run gives back to its caller or parent graph: the answer, its table and the status; and, when
    the input came as ``messages``, exactly one AI message with the answer."""

    answer: str | None
    table: list[dict[str, str]] | None
    status: str
    messages: list[AnyMessage]


class LeadState(TypedDict, total=False):
    question: str
    rollout_id: str
    # the caller's messages in, the answer message out (no reducer, so a run asked with a question has none
    # in its output); the lead's own conversation is ``lead_messages``
    messages: list[AnyMessage]
    lead_messages: Annotated[list[AnyMessage], resettable]
    reply_as_message: bool  # the input came as messages: the output adds one AI message with the answer
    turn: int
    wave: int
    ctx_tokens: int
    ctx_messages: int
    turn_meta: Annotated[list[TurnMeta], resettable]
    pending: PendingCall | None
    reports: Annotated[list[Report], resettable]  # the lead writes RESET when it starts a new wave
    agents: Annotated[list[dict[str, Any]], resettable]  # AgentTrajectory as plain data, per subagent
    errors: Annotated[list[str], resettable]
    status: str  # a Status value
    error: str | None
    answer: str | None
    table: list[dict[str, str]] | None
    boxed: str | None
    trajectory: dict[str, Any] | None  # Trajectory as plain data: safe in any checkpointer


class SubagentInput(TypedDict):
    question: str
    subtask: str
    index: int
    wave: int
    agent_id: str


class SubagentOutput(TypedDict):
    reports: list[Report]
    agents: list[dict[str, Any]]


class SubagentState(TypedDict, total=False):
    question: str
    subtask: str
    index: int
    wave: int
    agent_id: str
    messages: Annotated[list[AnyMessage], operator.add]
    turn: int
    ctx_tokens: int
    ctx_messages: int
    deadline: float | None
    turn_meta: Annotated[list[TurnMeta], operator.add]
    tool_errors: Annotated[list[str], operator.add]
    status: str  # a Status value
    error: str | None
    reports: list[Report]
    agents: list[dict[str, Any]]


Reducer = Callable[[Any, Any], Any]
S = TypeVar("S", bound=Mapping[str, Any])


@cache
def _reducers(schema: type) -> tuple[tuple[str, Reducer], ...]:
    """(key, reducer) for every key of ``schema`` whose type is ``Annotated[..., reducer]``."""
    out = []
    for key, hint in get_type_hints(schema, include_extras=True).items():
        if get_origin(hint) is Annotated:
            reducer = next((m for m in get_args(hint)[1:] if callable(m)), None)
            if reducer is not None:
                out.append((key, reducer))
    return tuple(out)


def apply_update(schema: type[S], state: Mapping[str, Any], update: Mapping[str, Any]) -> S:
    """``state`` with ``update`` applied as LangGraph applies it to a ``schema`` state: keys with a reducer
    are reduced, every other key is overwritten."""
    out = {**state, **update}
    for key, reducer in _reducers(schema):
        if key in update and key in state:
            out[key] = reducer(state[key], update[key])
    return cast(S, out)
