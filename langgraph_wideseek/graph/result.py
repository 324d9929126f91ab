"""What one run of the graph returns."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..tools.tally import ToolCount
from .trajectory import AgentStatus, Role, Status, Trajectory

__all__ = ["Usage", "WideSeekResult"]


class Usage(BaseModel):
    """Token and call counts of one run, summed over every agent."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    lead_calls: int = 0
    subagent_calls: int = 0
    subagents: int = 0
    failed_subagents: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, trajectory: Trajectory) -> Usage:
        """The counts of every model call recorded in ``trajectory``."""
        usage = cls()
        for a in trajectory.agents:
            for t in a.turns:
                usage.calls += 1
                usage.prompt_tokens += t.usage.get("prompt_tokens", 0)
                usage.completion_tokens += t.usage.get("completion_tokens", 0)
                if a.role == Role.LEAD:
                    usage.lead_calls += 1
                else:
                    usage.subagent_calls += 1
            if a.role == Role.SUBAGENT:
                usage.subagents += 1
                usage.failed_subagents += a.status == Status.FAILED
        return usage


class WideSeekResult(BaseModel):
    """The outcome of one multi-agent run.

    ``answer`` is the lead's final reply with reasoning removed (``None`` when the lead failed);
    ``table`` the rows of its fenced markdown table, ``boxed`` the content of ``\\boxed{}`` if present;
    ``errors`` lists every failure met on the way (failed subagents, tool errors, the lead's failure);
    ``tools`` counts the tool calls per tool and those whose every item failed (filled by ``arun``).
    """

    question: str
    answer: str | None = None
    table: list[dict[str, str]] | None = None
    boxed: str | None = None
    status: AgentStatus = Status.OK
    errors: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    tools: dict[str, ToolCount] = Field(default_factory=dict)
    trajectory: Trajectory

    @property
    def no_evidence(self) -> str | None:
        """Why the answer rests on no search results (every search call failed), else ``None``.

        Such an answer is a failure of the search service, not of the model: ``wideseek run`` exits 3 with
        this reason and ``wideseek eval`` records the trial as failed (retried by ``--retry-failed``) instead
        of scoring it."""
        search = self.tools.get("search")
        if search is not None and search.calls and search.failed == search.calls:
            return (
                f"every search call failed ({search.calls} of {search.calls}): the answer rests on no search "
                "results (see the errors)"
            )
        return None
