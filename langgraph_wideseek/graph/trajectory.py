"""Rollout trajectories: one record per model call, grouped by agent, exported as JSONL.

The format is a public contract (docs/trajectories.md): training, evaluation and offline analysis all read it.
Token ids and logprobs are exactly what the server returned, or ``None`` when it returned none.

The pydantic models below are the one declaration of the record shapes. Records are built on the hot path
without validation copies (a turn's messages are a prefix of the next turn's, and copying every prefix made
memory quadratic in turns; docs/benchmarks.md): :func:`from_plain` checks data against a checker derived from
these same models, constructs the models around the data when it fits, and validates fully when it does not.
Turns of one agent therefore share their message dicts: editing a message of one turn in place edits it in the
agent's other turns too. Treat the containers inside a trajectory as read-only (replacing a field is fine;
``model_copy(deep=True)`` gives an independent copy to edit in place).
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeGuard, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, Field

__all__ = [
    "AgentStatus",
    "AgentTrajectory",
    "Completion",
    "Role",
    "Status",
    "Trajectory",
    "TurnRecord",
    "from_plain",
    "read_jsonl",
    "to_plain",
    "write_jsonl",
]


class Status(StrEnum):
    """The status of a run, an agent, a subagent's report or an evaluation trial (values are the JSON
    strings)."""

    RUNNING = "running"  # graph state only: the agent has not finished
    OK = "ok"
    FAILED = "failed"


#: The statuses a finished agent or run can have.
AgentStatus = Literal[Status.OK, Status.FAILED]


class Role(StrEnum):
    LEAD = "lead"
    SUBAGENT = "subagent"


class Completion(BaseModel):
    """What the model generated in one call."""

    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)


class TurnRecord(BaseModel):
    """One generation call of one agent. Its message dicts are shared with the agent's other turns (see
    above)."""

    turn: int
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    completion: Completion
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    # what could not be recorded from the model's reply (another chat model's metadata in a shape the record
    # cannot hold), one sentence each; None when everything was recorded
    notes: list[str] | None = None


class AgentTrajectory(BaseModel):
    agent_id: str
    role: Role
    status: AgentStatus = Status.OK
    index: int | None = None
    error: str | None = None
    turns: list[TurnRecord] = Field(default_factory=list)


class Trajectory(BaseModel):
    """Every model call of one multi-agent rollout."""

    rollout_id: str
    question: str
    answer: str | None = None
    reward: float | None = None
    agents: list[AgentTrajectory] = Field(default_factory=list)

    def agent(self, agent_id: str) -> AgentTrajectory:
        for a in self.agents:
            if a.agent_id == agent_id:
                return a
        raise KeyError(agent_id)

    @property
    def lead(self) -> AgentTrajectory:
        return next(a for a in self.agents if a.role == Role.LEAD)

    @property
    def subagents(self) -> list[AgentTrajectory]:
        return [a for a in self.agents if a.role == Role.SUBAGENT]

    def num_calls(self) -> int:
        return sum(len(a.turns) for a in self.agents)

    def used_access(self) -> bool:
        """Whether any agent issued an ``access`` tool call (a reward bonus in spec section 5)."""
        for a in self.agents:
            for t in a.turns:
                for call in t.completion.tool_calls:
                    if call.get("function", {}).get("name", call.get("name")) == "access":
                        return True
        return False

    def longest_generation(self) -> int:
        """Tokens of the longest single generation of any agent (for the length penalty)."""
        best = 0
        for a in self.agents:
            for t in a.turns:
                if t.completion_token_ids is not None:
                    n = len(t.completion_token_ids)
                else:
                    n = int(t.usage.get("completion_tokens", 0))
                best = max(best, n)
        return best

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=False)


# --- plain data <-> models, without copies ------------------------------------------------------------------
M = TypeVar("M", bound=BaseModel)
_Check = Callable[[Any], bool]


def to_plain(model: BaseModel) -> dict[str, Any]:
    """``model.model_dump(mode="json")`` for these models (whose leaves are JSON values), sharing containers.

    Enum members become their plain values, so checkpointers store the data without registering our types.
    """
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        v = getattr(model, name)
        if isinstance(v, BaseModel):
            v = to_plain(v)
        elif isinstance(v, list) and v and isinstance(v[0], BaseModel):
            v = [to_plain(x) for x in v]
        elif isinstance(v, Enum):
            v = v.value
        out[name] = v
    return out


def from_plain(model: type[M], data: Any) -> M:
    """``model.model_validate(data)`` without copies when ``data`` already has the declared shape.

    The shape check is derived from the model's field annotations: scalar fields exactly, lists of scalars by
    their first element (a type error further in would come from a server bug, not from our own records),
    nested models and lists of models element by element. Anything else is validated in full, so a wrong
    shape (a checkpoint edited by hand, another chat model's metadata) is a clear error, never a bad record.
    """
    if _model_check(model)(data):
        return _construct(model, data)
    return model.model_validate(data)


def _construct(model: type[M], data: dict[str, Any]) -> M:
    nested, enums = _nested_models(model), _enum_fields(model)
    if not nested and not enums:
        return model.model_construct(**data)
    values = dict(data)
    for name, (inner, many) in nested.items():
        if name in values and values[name] is not None:
            v = values[name]
            values[name] = [_construct(inner, x) for x in v] if many else _construct(inner, v)
    for name, enum in enums.items():
        if name in values and not isinstance(values[name], enum):
            values[name] = enum(
                values[name]
            )  # the checked plain value back to its member, as validation would
    return model.model_construct(**values)


@cache
def _enum_fields(model: type[BaseModel]) -> dict[str, type[Enum]]:
    """Fields holding an enum member (typed with the enum, or with a ``Literal`` of its members)."""
    out: dict[str, type[Enum]] = {}
    for name, f in model.model_fields.items():
        tp = f.annotation
        if get_origin(tp) is Literal and get_args(tp) and isinstance(get_args(tp)[0], Enum):
            out[name] = type(get_args(tp)[0])
        elif isinstance(tp, type) and issubclass(tp, Enum):
            out[name] = tp
    return out


@cache
def _nested_models(model: type[BaseModel]) -> dict[str, tuple[type[BaseModel], bool]]:
    """Fields holding a model (``many=False``) or a list of models (``many=True``)."""
    out: dict[str, tuple[type[BaseModel], bool]] = {}
    for name, f in model.model_fields.items():
        tp = f.annotation
        if _is_model(tp):
            out[name] = (tp, False)
        elif get_origin(tp) is list and _is_model(get_args(tp)[0]):
            out[name] = (get_args(tp)[0], True)
    return out


def _is_model(tp: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


@dataclass(frozen=True)
class _ListOf:
    """A list whose first element's exact type is one of ``kinds`` (or ``None`` when ``nullable``)."""

    kinds: frozenset[type]
    nullable: bool = False

    def __call__(self, v: Any) -> bool:
        if v is None:
            return self.nullable
        return type(v) is list and (not v or type(v[0]) in self.kinds)


_Spec = frozenset[type] | _ListOf | _Check | None


@cache
def _model_check(model: type[BaseModel]) -> _Check:
    # Fields checked by exact types (scalars, and lists by their first element) are tested inline, the others
    # through their closure: this runs for every turn record of every run, so it avoids a Python call per
    # field where it can.
    typed: list[tuple[str, frozenset[type], bool]] = []
    lists: list[tuple[str, _ListOf, bool]] = []
    called: list[tuple[str, _Check, bool]] = []
    for name, f in model.model_fields.items():
        spec, required = _spec(f.annotation), f.is_required()
        if isinstance(spec, frozenset):
            typed.append((name, spec, required))
        elif isinstance(spec, _ListOf):
            lists.append((name, spec, required))
        elif spec is not None:
            called.append((name, spec, required))
        elif required:
            typed.append((name, frozenset(), True))  # Any: only its presence is checked

    def check(v: Any) -> bool:
        if type(v) is not dict:
            return False
        for name, kinds, required in typed:
            if name in v:
                if kinds and type(v[name]) not in kinds:
                    return False
            elif required:
                return False
        for name, of, required in lists:
            if name in v:
                x = v[name]
                if x is None:
                    if not of.nullable:
                        return False
                elif type(x) is not list or (x and type(x[0]) not in of.kinds):
                    return False
            elif required:
                return False
        for name, ok, required in called:
            if name in v:
                if not ok(v[name]):
                    return False
            elif required:
                return False
        return True

    return check


_SCALARS: dict[Any, frozenset[type]] = {
    type(None): frozenset({type(None)}),
    str: frozenset({str}),
    int: frozenset({int}),
    bool: frozenset({bool}),
    float: frozenset({float, int}),
}


def _spec(tp: Any) -> _Spec:  # one branch per kind of annotation
    """How a plain value is checked against ``tp``: exact types, a list check, a closure, or None (any)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return None
    if tp in _SCALARS:
        return _SCALARS[tp]
    if origin is dict:
        return frozenset({dict})
    if origin in (Union, types.UnionType):
        specs = [_spec(a) for a in args]
        if any(sp is None for sp in specs):
            return None
        if all(isinstance(sp, frozenset) for sp in specs):
            return frozenset().union(*specs)  # type: ignore[arg-type]
        rest = [sp for a, sp in zip(args, specs) if a is not type(None)]
        if len(rest) == 1 and isinstance(rest[0], _ListOf) and len(args) == 2:
            return _ListOf(rest[0].kinds, nullable=True)
        alternatives = [_as_check(sp) for sp in specs]
        return lambda v: any(ok(v) for ok in alternatives)
    if origin is Literal or (isinstance(tp, type) and issubclass(tp, Enum)):
        allowed = frozenset(args) if origin is Literal else frozenset(m.value for m in tp)
        return lambda v: isinstance(v, (str, int)) and v in allowed
    if origin is list:
        if _is_model(args[0]):
            each = _model_check(args[0])
            return lambda v: type(v) is list and all(map(each, v))
        item = _spec(args[0])
        if item is None:
            return frozenset({list})
        if isinstance(item, frozenset):
            return _ListOf(item)
        first = _as_check(item)
        return lambda v: type(v) is list and (not v or first(v[0]))
    if _is_model(tp):
        return _model_check(tp)
    raise TypeError(f"no plain-data check for the annotation {tp!r}")  # a new field type: teach _spec


def _as_check(spec: _Spec) -> _Check:
    if spec is None:
        return lambda v: True
    if isinstance(spec, frozenset):
        kinds = spec
        return lambda v: type(v) in kinds
    return spec


def write_jsonl(path: str | Path, trajectories: Iterable[Trajectory], *, append: bool = True) -> None:
    """Write trajectories one per line (appending by default, as ``wideseek run --trajectory`` does)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a" if append else "w", encoding="utf-8") as f:
        for t in trajectories:
            f.write(t.to_json())
            f.write("\n")


def read_jsonl(path: str | Path) -> Iterator[Trajectory]:
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Trajectory.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValueError) as e:
                raise ValueError(f"{path}:{lineno}: not a trajectory record: {e}") from e
