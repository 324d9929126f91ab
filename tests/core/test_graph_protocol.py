"""The turn protocol under everything that can go wrong: each case has a defined outcome (an error tool
message to the model, a retry, or an explicit failure report), never a crash and never a silent zero."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatResult

from langgraph_wideseek.testing import Reply, ScriptedPolicy, is_lead, turn_index

from .helpers import call, spawn, subtask_of

OVERFLOW = (
    "This model's maximum context length is 32000 tokens. However, you requested 40000 tokens "
    "(39000 in the messages, 1000 in the completion). Please reduce the length of the messages."
)


def requests_of(srv, key: str) -> list[dict[str, Any]]:
    """A subagent's requests, in turn order."""
    reqs = [r for r in srv.requests if not is_lead(r) and key in subtask_of(r)]
    return sorted(reqs, key=turn_index)


def lead_requests(srv) -> list[dict[str, Any]]:
    return [r for r in srv.requests if is_lead(r)]


def tool_msgs(req: dict[str, Any]) -> list[str]:
    return [m["content"] for m in req["messages"] if m["role"] == "tool"]


def last_block(req: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages after the last assistant message: what answered the previous turn."""
    msgs = req["messages"]
    last_ai = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    return msgs[last_ai + 1 :]


def one_wave(*subagents: tuple[str, list[Reply]], final: str = "final answer") -> ScriptedPolicy:
    return ScriptedPolicy(
        lead=[spawn(*(k for k, _ in subagents)), Reply(content=final)], subagents=dict(subagents)
    )


# ------------------------------------------------------------------------------- malformed tool calls
async def test_malformed_subagent_tool_calls_get_error_messages_and_count_as_turns(serve, make_graph):
    bad_json = Reply(tool_calls=[{"name": "search", "arguments": '{"queries": [{"query": "x"'}])
    unknown = Reply(tool_calls=[call("browse", url="https://x")])
    wrong_shape = Reply(tool_calls=[call("search", q="Amsel")])
    wrong_item = Reply(tool_calls=[call("access", urls=[{"url": "https://x"}])])
    hermes_bad = Reply(content="<tool_call>\n{not json at all}\n</tool_call>", hermes_text=True)
    policy = one_wave(
        (
            "MALFORMED",
            [bad_json, unknown, wrong_shape, wrong_item, hermes_bad, Reply(content="report after errors")],
        )
    )
    srv = await serve(policy)
    result = await make_graph(srv).arun("Q")
    assert policy.failures == [] and result.status == "ok"

    reqs = requests_of(srv, "MALFORMED")
    assert len(reqs) == 6
    answers = [tool_msgs(r)[-1] for r in reqs[1:]]
    assert answers[0].startswith("Error: tool call arguments are not valid JSON")
    assert answers[1].startswith("Error: unknown tool 'browse'. Available tools: search, access.")
    assert answers[2].startswith("Error: search expects")
    assert answers[3].startswith("Error: urls[0].info_to_extract must be a non-empty string")
    assert answers[4].startswith("Error: tool call is not valid JSON")
    for turn, text in enumerate(answers, start=2):  # each malformed call used up one turn
        assert text.endswith(f"(Your next reply is turn {turn}. You must finish by turn 20.)")
    sub = result.trajectory.agent("w1.s1")
    assert sub.status == "ok" and len(sub.turns) == 6
    # the model sees its own malformed call again, as the text it wrote
    assert "{not json at all}" in json.dumps(reqs[5]["messages"])


@pytest.mark.parametrize(
    "reply, error",
    [
        (
            Reply(tool_calls=[{"name": "create_sub_agents", "arguments": '{"sub_agents": ['}]),
            "not valid JSON",
        ),
        (
            Reply(tool_calls=[call("search", queries=[{"query": "x"}])]),
            "unknown tool 'search'. Available tools: create_sub_agents.",
        ),
        (
            Reply(tool_calls=[call("create_sub_agents", sub_agents="do everything")]),
            "create_sub_agents expects",
        ),
        (Reply(tool_calls=[call("create_sub_agents", sub_agents=[])]), "create_sub_agents expects"),
        (
            Reply(tool_calls=[call("create_sub_agents", sub_agents=[{"task": "x"}, {"prompt": " "}])]),
            "no entry of sub_agents has a non-empty string 'prompt'",
        ),
    ],
)
async def test_malformed_lead_calls_are_answered_with_an_error(serve, make_graph, reply, error):
    policy = ScriptedPolicy(lead=[reply, Reply(content="\\boxed{42}")])
    srv = await serve(policy)
    result = await make_graph(srv).arun("Q")
    assert policy.failures == []
    assert result.status == "ok" and result.boxed == "42"
    assert result.usage.subagents == 0 and len(srv.requests) == 2  # no subagent was started
    (answer,) = last_block(srv.requests[1])
    assert answer["role"] == "tool" and answer["content"].startswith("Error: ")
    assert error in answer["content"]
    assert answer["content"].endswith("(Your next reply is turn 2. You must finish by turn 10.)")
    assert result.trajectory.lead.turns[0].turn == 1 and len(result.trajectory.lead.turns) == 2


async def test_entries_without_a_prompt_are_skipped_with_a_note(serve, make_graph):
    policy = ScriptedPolicy(
        lead=[
            Reply(tool_calls=[call("create_sub_agents", sub_agents=[{"prompt": "KEPT one"}, {"x": 1}])]),
            Reply(content="done"),
        ],
        subagents={"KEPT one": [Reply(content="r")]},
    )
    srv = await serve(policy)
    result = await make_graph(srv).arun("Q")
    assert result.usage.subagents == 1
    text = tool_msgs(srv.requests[-1])[0]
    assert text.startswith(
        "Note: 1 entry(ies) of sub_agents had no usable 'prompt' and were skipped.\n\n"
        "# Subtask 1:\nKEPT one\n"
    )


# ----------------------------------------------------------------------------------------- limits
@pytest.mark.parametrize("limit, asked", [(10, 12), (3, 5)])
async def test_extra_subagents_are_dropped_with_a_note(serve, make_graph, limit, asked):
    prompts = [f"ENTITY-{i:02d} details" for i in range(1, asked + 1)]
    policy = ScriptedPolicy(
        lead=[spawn(*prompts), Reply(content="done")],
        default_subagent=lambda req, k: Reply(content="report " + subtask_of(req)[:9]),
    )
    srv = await serve(policy)
    result = await make_graph(srv, max_subagents=limit).arun("Q")
    assert result.usage.subagents == limit
    started = sorted(subtask_of(r) for r in srv.requests if not is_lead(r))
    assert started == prompts[:limit]
    text = tool_msgs(srv.requests[-1])[0]
    assert text.startswith(
        f"Note: at most {limit} subagents can be created per call; the last "
        f"{asked - limit} requested subagent(s) were not created.\n\n# Subtask 1:"
    )
    assert f"# Subtask {limit}:" in text and f"# Subtask {limit + 1}:" not in text


async def test_only_the_first_tool_call_of_a_subagent_turn_runs(serve, make_graph):
    two = Reply(
        tool_calls=[
            call("search", queries=[{"query": "Amsel"}]),
            call(
                "access", urls=[{"url": "https://wiki.example.org/Amsel_River", "info_to_extract": "length"}]
            ),
        ]
    )
    policy = one_wave(("TWO CALLS", [two, Reply(content="report")]))
    srv = await serve(policy)
    await make_graph(srv).arun("Q")
    first, second = last_block(requests_of(srv, "TWO CALLS")[1])
    assert first["role"] == second["role"] == "tool"
    assert first["content"].startswith("# Search query: Amsel\n# Result:\n[Doc 1](")
    assert "# Access URL:" not in first["content"]
    assert second["content"] == (
        "Not executed: only the first tool call of a turn is executed. Call tools one at a time."
    )
    ai = requests_of(srv, "TWO CALLS")[1]["messages"][2]
    assert [tc["id"] for tc in ai["tool_calls"]] == [first["tool_call_id"], second["tool_call_id"]]


async def test_only_the_first_create_sub_agents_call_runs(serve, make_graph):
    two = Reply(
        tool_calls=[
            call("create_sub_agents", sub_agents=[{"prompt": "FIRST wave"}]),
            call("create_sub_agents", sub_agents=[{"prompt": "SECOND wave"}]),
        ]
    )
    policy = ScriptedPolicy(
        lead=[two, Reply(content="done")], subagents={"FIRST wave": [Reply(content="r1")]}
    )
    srv = await serve(policy)
    result = await make_graph(srv).arun("Q")
    assert policy.failures == [] and result.usage.subagents == 1
    first, second = last_block(srv.requests[-1])
    assert "# Subtask 1:\nFIRST wave" in first["content"]
    assert second["content"].startswith("Not executed")


@pytest.mark.parametrize(
    "empty",
    [
        Reply(content=""),
        Reply(reasoning="only thinking", content=""),
        Reply(content="<think>all of it</think>", hermes_text=True),
    ],
)
async def test_empty_replies_get_a_nudge(serve, make_graph, empty):
    policy = ScriptedPolicy(
        lead=[empty, spawn("NUDGED sub"), Reply(content="done")],
        subagents={"NUDGED sub": [empty, Reply(content="report")]},
    )
    srv = await serve(policy)
    result = await make_graph(srv).arun("Q")
    assert result.status == "ok" and policy.failures == []
    (nudge,) = last_block(lead_requests(srv)[1])
    assert nudge["role"] == "user"
    assert nudge["content"] == (
        "Your last reply was empty. Continue the task: call a tool, or give your "
        "final answer.\n\n(Your next reply is turn 2. You must finish by turn 10.)"
    )
    (sub_nudge,) = last_block(requests_of(srv, "NUDGED")[1])
    assert sub_nudge["role"] == "user" and sub_nudge["content"].startswith("Your last reply was empty.")
    assert len(result.trajectory.lead.turns) == 3


async def test_subagent_turn_limit_gives_a_failure_report(serve, make_graph):
    always_search = [Reply(tool_calls=[call("search", queries=[{"query": "Veloria"}])])] * 3
    policy = one_wave(("ENDLESS", always_search), ("QUICK", [Reply(content="quick report")]))
    srv = await serve(policy)
    result = await make_graph(srv, max_subagent_turns=3).arun("Q")
    assert result.status == "ok"  # one failed subagent does not fail the run
    assert len(requests_of(srv, "ENDLESS")) == 3
    report = tool_msgs(srv.requests[-1])[0]
    assert (
        "# Subtask 1:\nENDLESS\n# Result:\nThe subagent could not complete this subtask (turn limit (3) "
        "reached without a report)."
    ) in report
    assert "# Subtask 2:\nQUICK\n# Result:\nquick report" in report
    assert result.errors == ["w1.s1: turn limit (3) reached without a report"]
    assert result.usage.failed_subagents == 1
    sub = result.trajectory.agent("w1.s1")
    assert sub.status == "failed" and len(sub.turns) == 3 and "turn limit" in sub.error


async def test_lead_turn_limit_fails_the_run_without_an_answer(serve, make_graph):
    policy = ScriptedPolicy(
        lead=[spawn(f"ROUND {i}") for i in range(3)], default_subagent=lambda req, k: Reply(content="r")
    )
    srv = await serve(policy)
    result = await make_graph(srv, max_lead_turns=3).arun("Q")
    assert result.status == "failed" and result.answer is None and result.table is None
    assert result.errors[-1] == "lead: turn limit (3) reached without a final answer"
    assert len(lead_requests(srv)) == 3
    assert result.usage.subagents == 2  # the third turn's call is not served: the lead has no turn left
    assert result.trajectory.lead.status == "failed" and result.trajectory.answer is None


# ------------------------------------------------------------------------------------ context limits
async def test_context_overflow_from_the_server_fails_one_subagent_not_the_wave(serve, make_graph):
    policy = one_wave(
        ("TOO LONG", [Reply(status=400, error=OVERFLOW)]), ("FINE", [Reply(content="fine report")])
    )
    srv = await serve(policy)
    result = await make_graph(srv).arun("Q")
    assert result.status == "ok" and result.answer == "final answer"
    report = tool_msgs(srv.requests[-1])[0]
    assert (
        "# Subtask 1:\nTOO LONG\n# Result:\nThe subagent could not complete this subtask (context overflow:"
    ) in report
    assert "# Subtask 2:\nFINE\n# Result:\nfine report" in report
    assert len(requests_of(srv, "TOO LONG")) == 1  # a 400 is not retried
    assert result.errors[0].startswith("w1.s1: context overflow: This model's maximum context length")


async def test_small_context_budget_fails_the_subagent_after_a_large_tool_result(serve, make_graph):
    topics = ("river", "Veloria", "Kessel", "Northern Sea", "lake")
    flood = Reply(tool_calls=[call("search", queries=[{"query": q, "count": 10} for q in topics])])
    policy = one_wave(("FLOODED", [flood, Reply(content="never asked")]), ("SMALL", [Reply(content="small")]))
    srv = await serve(policy)
    result = await make_graph(srv, context_tokens=2000, max_prompt_tokens=1024).arun("Q")
    assert result.status == "ok"
    assert len(requests_of(srv, "FLOODED")) == 1  # predicted before sending, not sent to fail
    assert result.errors and result.errors[0].startswith("w1.s1: context overflow: about ")
    assert "of 2000 tokens used before this turn" in result.errors[0]
    # every request asked for no more than what was left of the agent's context
    assert all(0 < r["max_tokens"] < 2000 for r in srv.requests)


async def test_generation_cut_by_the_length_limit_is_a_failure(serve, make_graph):
    policy = one_wave(("CUT", [Reply(content="a report that never ends", finish_reason="length")]))
    srv = await serve(policy)
    result = await make_graph(srv).arun("Q")
    assert result.errors == ["w1.s1: context overflow: the generation reached the context limit"]
    assert result.trajectory.agent("w1.s1").turns[0].finish_reason == "length"


async def test_server_context_window_smaller_than_configured_fails_the_lead(serve, make_graph):
    srv = await serve(ScriptedPolicy(lead=[Reply(content="never")]), max_context=2000)
    result = await make_graph(srv).arun("Q")
    assert result.status == "failed" and result.answer is None
    assert result.errors[0].startswith("lead: context overflow: This model's maximum context length is 2000")
    assert result.trajectory.lead.turns == [] and result.trajectory.lead.status == "failed"


async def test_oversized_initial_prompt_is_refused_before_sending(serve, make_graph):
    huge = "HUGE subtask " + "with many many words " * 1200
    policy = ScriptedPolicy(
        lead=[spawn(huge, "NORMAL"), Reply(content="done")],
        subagents={"HUGE subtask": [Reply(content="never")], "NORMAL": [Reply(content="n")]},
    )
    srv = await serve(policy)
    result = await make_graph(srv).arun("Q")
    assert result.status == "ok"
    assert [subtask_of(r) for r in srv.requests if not is_lead(r)] == ["NORMAL"]
    assert result.errors == ["w1.s1: the subtask prompt exceeds max_prompt_tokens (4096)"]


# ------------------------------------------------------------------------------------ server failures
class Flaky:
    """Every ``n``-th request fails with ``status`` before reaching the script."""

    def __init__(self, policy, n: int, status: int) -> None:
        self.policy, self.n, self.status = policy, n, status
        self.count = itertools.count(1)

    def __call__(self, req):
        if next(self.count) % self.n == 0:
            return Reply(status=self.status, error="overloaded", headers={"Retry-After": "0"})
        return self.policy(req)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_http_errors_mid_run_are_retried_and_the_run_completes(serve, make_graph, status):
    script = ScriptedPolicy(
        lead=[spawn("A one", "B two", "C three"), Reply(content="\\boxed{done}")],
        default_subagent=lambda req, k: (
            Reply(tool_calls=[call("search", queries=[{"query": "Corvo"}])])
            if k == 0
            else Reply(content="report")
        ),
    )
    srv = await serve(Flaky(script, 3, status))
    result = await make_graph(srv).arun("Q")
    assert result.status == "ok" and result.boxed == "done" and result.errors == []
    assert srv.stats.errors >= 3
    assert result.usage.calls == 8  # failures were retried, not counted as turns


async def test_a_server_that_never_answers_a_subagent(serve, make_graph):
    policy = one_wave(("STUCK", [Reply(content="too late", delay=1.5)]), ("OK", [Reply(content="fine")]))
    srv = await serve(policy)
    t0 = time.perf_counter()
    result = await make_graph(srv, request_timeout=0.3, max_retries=1).arun("Q")
    assert time.perf_counter() - t0 < 1.5
    assert result.status == "ok" and result.answer == "final answer"
    assert result.usage.failed_subagents == 1
    assert "w1.s1: model server error" in result.errors[0] and "timed out" in result.errors[0]
    assert len(requests_of(srv, "STUCK")) == 2


async def test_a_server_that_never_answers_at_all(serve, make_graph):
    srv = await serve(lambda req: Reply(content="too late", delay=1.5))
    result = await make_graph(srv, request_timeout=0.2, max_retries=1).arun("Q")
    assert result.status == "failed" and result.answer is None and result.table is None
    assert len(result.errors) == 1 and result.errors[0].startswith("lead: model server error")
    assert "failed after 2 attempts" in result.errors[0]
    assert result.trajectory.lead.status == "failed"


async def test_subagent_wall_clock_timeout(serve, make_graph):
    slow = [Reply(tool_calls=[call("search", queries=[{"query": "x"}])], delay=0.25)] * 5
    policy = one_wave(("SLOWPOKE", slow), ("OK", [Reply(content="fine")]))
    srv = await serve(policy)
    result = await make_graph(srv, subagent_timeout=0.6).arun("Q")
    assert result.status == "ok"
    assert result.errors == ["w1.s1: timed out"]
    assert 2 <= len(requests_of(srv, "SLOWPOKE")) <= 3


async def test_lead_failure_mid_run_keeps_subagent_work_in_the_trajectory(serve, make_graph):
    policy = ScriptedPolicy(
        lead=[spawn("WORKER"), Reply(status=400, error="invalid request: bad template")],
        subagents={"WORKER": [Reply(content="work done")]},
    )
    srv = await serve(policy)
    result = await make_graph(srv).arun("Q")
    assert result.status == "failed" and result.answer is None
    assert result.errors == [
        "lead: model server error: HTTP 400 from model server: invalid request: bad template"
    ]
    assert [a.agent_id for a in result.trajectory.agents] == ["lead", "w1.s1"]
    assert result.trajectory.agent("w1.s1").status == "ok"


class Broken(BaseChatModel):
    """An injected model with a bug in it."""

    @property
    def _llm_type(self) -> str:
        return "broken"

    def bind_tools(self, tools, **kw):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kw) -> ChatResult:
        raise ZeroDivisionError("division by zero in user code")


async def test_a_raising_injected_model_is_reported_not_raised(make_graph):
    result = await make_graph("http://127.0.0.1:9/v1", llm=Broken()).arun("Q")
    assert result.status == "failed"
    assert result.errors == ["lead: model call raised ZeroDivisionError: division by zero in user code"]


async def test_oversized_question_fails_the_lead_with_a_clear_error(serve, make_graph):
    srv = await serve(ScriptedPolicy(lead=[Reply(content="never")]))
    result = await make_graph(srv, max_prompt_tokens=512, context_tokens=4096).arun("word " * 2000)
    assert srv.requests == []
    assert result.status == "failed"
    assert result.errors == ["lead: the task prompt exceeds max_prompt_tokens (512)"]
    assert result.answer is None


class SloppySearch:
    """A user's backend that breaks the protocol: plain dicts for hits, and a crash on one query."""

    name = "sloppy"

    async def search(self, query: str, count: int):
        if query == "crash":
            raise TypeError("unexpected keyword in user code")
        if query == "garbage":
            return [42]
        return [{"url": "https://wiki.example.org/Amsel_River", "title": "Amsel", "snippet": "412 km"}]


class SloppyReader:
    name = "sloppy"

    async def read(self, url: str):
        return "just a string, not a Page"


async def test_user_backends_that_break_the_protocol_do_not_crash_the_run(
    serve, make_graph, corpus_path, index_dir
):
    from langgraph_wideseek import WideSeekConfig, WideSeekGraph
    from langgraph_wideseek.model import ChatVLLM

    turns = [
        Reply(tool_calls=[call("search", queries=["dicts", "crash", "garbage"])]),
        Reply(tool_calls=[call("access", urls=[{"url": "https://x", "info_to_extract": "y"}])]),
        Reply(content="report"),
    ]
    policy = one_wave(("SLOPPY", turns))
    srv = await serve(policy)
    cfg = WideSeekConfig(base_url=srv.base_url, model="m", summarize_pages=False)
    graph = WideSeekGraph(cfg, llm=ChatVLLM.from_config(cfg), search=SloppySearch(), reader=SloppyReader())
    try:
        result = await graph.arun("Q")
    finally:
        await graph.aclose()
    assert result.status == "ok" and policy.failures == []
    reqs = requests_of(srv, "SLOPPY")
    search_text, access_text = tool_msgs(reqs[1])[-1], tool_msgs(reqs[2])[-1]
    assert "[Doc 1](https://wiki.example.org/Amsel_River):\nAmsel\n412 km" in search_text  # dicts accepted
    assert (
        "# Search query: crash\n# Result:\nSearch failed for this query (internal error TypeError)"
        in search_text
    )
    assert (
        "# Search query: garbage\n# Result:\nSearch failed for this query (the search backend returned "
        "an invalid result)" in search_text
    )
    assert "Could not read this URL (the page reader returned an invalid page)" in access_text
    assert len(result.errors) == 3


async def test_a_crashing_tool_costs_one_call_not_the_run(serve, make_graph, monkeypatch):
    policy = one_wave(
        ("CRASHY", [Reply(tool_calls=[call("search", queries=["x"])]), Reply(content="report")])
    )
    srv = await serve(policy)
    graph = make_graph(srv)

    async def broken_run(args):
        raise RuntimeError("a bug in the tool layer")

    monkeypatch.setattr(graph.search_tool, "run", broken_run)
    result = await graph.arun("Q")
    assert result.status == "ok" and result.usage.failed_subagents == 0
    answer = tool_msgs(requests_of(srv, "CRASHY")[1])[-1]
    assert answer.startswith("Error: the search tool failed (internal error RuntimeError)")
    assert result.errors == ["w1.s1: internal error RuntimeError"]
