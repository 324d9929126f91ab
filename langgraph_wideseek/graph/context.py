"""Per-run settings: the graph's ``context_schema``.

Build-time objects (the chat model, the search index, the HTTP clients) stay in
:class:`~langgraph_wideseek.config.WideSeekConfig` and the :class:`WideSeekGraph` constructor; the knobs a
caller may change from one run to the next live here. Pass them per run::

    await app.ainvoke({"question": q}, context={"max_subagents": 3, "language": "zh"})

Studio shows them as the run's configuration form. A field left ``None`` keeps the config's value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["CONTEXT_MAX_TURNS", "WideSeekContext"]

#: The largest turn limit a run may ask for (the compiled graph's recursion limit is sized for it).
CONTEXT_MAX_TURNS = 100


@dataclass
class WideSeekContext:
    """Settings of one run; ``None`` keeps the value of the graph's :class:`WideSeekConfig`."""

    max_subagents: int | None = None
    """Subagents per wave at most (extra entries of a call are dropped, and the lead is told)."""
    max_lead_turns: int | None = None
    """Model calls of the lead at most."""
    max_subagent_turns: int | None = None
    """Model calls of each subagent at most."""
    subagent_timeout: float | None = None
    """Seconds a subagent may run (0: no limit)."""
    language: Literal["en", "zh"] | None = None
    """The prompts' language: "en" or "zh"."""

    def __post_init__(self) -> None:
        for name in ("max_subagents", "max_lead_turns", "max_subagent_turns"):
            v = getattr(self, name)
            if v is not None and not 1 <= v <= CONTEXT_MAX_TURNS:
                raise ConfigError(f"{name} must be between 1 and {CONTEXT_MAX_TURNS}, got {v}")
        if self.subagent_timeout is not None and self.subagent_timeout < 0:
            raise ConfigError(f"subagent_timeout must be >= 0, got {self.subagent_timeout}")
        if self.language not in (None, "en", "zh"):
            raise ConfigError(f"language must be 'en' or 'zh', got {self.language!r}")

    @classmethod
    def of(cls, value: Any) -> WideSeekContext | None:
        """A context from what a run was given (this class, a mapping, or nothing)."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ConfigError(f"unknown context keys {unknown}; known: {sorted(known)}")
            return cls(**value)
        return None  # another graph's context (this graph is a node of it): the config's values hold
