"""Hard ceilings on subagents (issue 13): per call and per run, with a note to the lead, and settings above
the ceilings refused (one model reply once started 5,000 subagents)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from langgraph_wideseek import WideSeekConfig
from langgraph_wideseek.config import MAX_SUBAGENTS_CEILING, MAX_TOTAL_SUBAGENTS_CEILING
from langgraph_wideseek.testing import Reply, ScriptedPolicy, is_lead

from .helpers import spawn, subtask_of


def tool_texts(req: dict[str, Any]) -> list[str]:
    return [m["content"] for m in req["messages"] if m["role"] == "tool"]


@pytest.mark.parametrize(
    "field, ceiling",
    [("max_subagents", MAX_SUBAGENTS_CEILING), ("max_total_subagents", MAX_TOTAL_SUBAGENTS_CEILING)],
)
def test_settings_above_the_ceilings_are_refused(field, ceiling):
    assert getattr(WideSeekConfig(**{field: ceiling}), field) == ceiling
    with pytest.raises(ValidationError, match=field):
        WideSeekConfig(**{field: ceiling + 1})
    with pytest.raises(ValidationError, match=field):
        WideSeekConfig(**{field: 100_000})


def test_the_defaults_are_the_papers():
    cfg = WideSeekConfig()
    assert cfg.max_subagents == 10 and cfg.max_total_subagents == cfg.max_subagents * cfg.max_lead_turns


async def test_the_run_stops_starting_subagents_at_its_ceiling(serve, make_graph):
    waves = [[f"W{w}-{i} details" for i in range(1, 5)] for w in range(1, 4)]
    policy = ScriptedPolicy(
        lead=[spawn(*waves[0]), spawn(*waves[1]), spawn(*waves[2]), Reply(content="done")],
        default_subagent=lambda req, k: Reply(content="report " + subtask_of(req)[:5]),
    )
    srv = await serve(policy)
    result = await make_graph(srv, max_subagents=4, max_total_subagents=6).arun("Q")
    assert result.status == "ok" and result.usage.subagents == 6
    started = sorted(subtask_of(r) for r in srv.requests if not is_lead(r))
    assert started == sorted(waves[0] + waves[1][:2])
    leads = [r for r in srv.requests if is_lead(r)]
    second = tool_texts(leads[2])[-1]
    assert second.startswith("Note: this run may start at most 6 subagents in all; the last 2 requested")
    third = tool_texts(leads[3])[-1]
    assert "at most 6 subagents in all; the last 4 requested" in third and "# Subtask" not in third
