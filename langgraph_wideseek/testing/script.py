"""Scripted policies for :class:`~langgraph_wideseek.testing.server.FakeOpenAIServer`.

Requests arrive concurrently and in no fixed order, so a script is keyed by *who* is asking, not by arrival:
the lead is recognised by its ``create_sub_agents`` tool, a subagent by a substring of its first user message
(its subtask), and the turn by how many assistant messages its context already holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .server import Reply


def tool_names(request: dict[str, Any]) -> set[str]:
    return {t.get("function", {}).get("name") for t in request.get("tools") or []}


def is_lead(request: dict[str, Any]) -> bool:
    return "create_sub_agents" in tool_names(request)


def first_user_text(request: dict[str, Any]) -> str:
    for m in request["messages"]:
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else "".join(p.get("text", "") for p in c or [])
    return ""


def turn_index(request: dict[str, Any]) -> int:
    """0 for an agent's first call, 1 for its second, ..."""
    return sum(1 for m in request["messages"] if m.get("role") == "assistant")


class ScriptedPolicy:
    """Replay fixed turns: ``lead[k]`` answers the lead's k-th call; ``subagents[key][k]`` the k-th call of
    the subagent whose first user message contains ``key``. A missing turn is a test bug and raises loudly
    (the server answers HTTP 500 and the error is kept in ``self.failures``)."""

    def __init__(
        self,
        lead: list[Reply],
        subagents: dict[str, list[Reply]] | None = None,
        *,
        default_subagent: Callable[[dict[str, Any], int], Reply] | None = None,
    ) -> None:
        self.lead = lead
        self.subagents = subagents or {}
        self.default_subagent = default_subagent
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Reply:
        k = turn_index(request)
        if is_lead(request):
            return self._pick(self.lead, k, "lead")
        text = first_user_text(request)
        for key, turns in self.subagents.items():
            if key in text:
                return self._pick(turns, k, f"subagent {key!r}")
        if self.default_subagent is not None:
            return self.default_subagent(request, k)
        return self._fail(f"no script for subagent with first message {text[:200]!r}")

    def _pick(self, turns: list[Reply], k: int, who: str) -> Reply:
        if k < len(turns):
            return turns[k]
        return self._fail(f"script for {who} has no turn {k}")

    def _fail(self, why: str) -> Reply:
        with self._lock:
            self.failures.append(why)
        return Reply(status=500, error=f"test script error: {why}")
