"""The whole graph over HTTP against the fake server: the right table from the corpus, context isolation,
trajectories that match the server call for call, progress events, and the compiled graph as a Runnable."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from langgraph.graph.state import CompiledStateGraph

from langgraph_wideseek import Trajectory, WideSeekGraph
from langgraph_wideseek.testing import FakeOpenAIServer, Reply, ScriptedPolicy, is_lead, turn_index

from .helpers import (
    LIST_TASK,
    QUESTION,
    RIVERS,
    VeloriaAgents,
    call,
    echo_summary,
    is_summary_request,
    last_tool_text,
    river_task,
    spawn,
    subtask_of,
    with_summarizer,
)


def agent_requests(srv: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [r for r in srv.requests if not is_summary_request(r)]


@pytest.mark.parametrize("summarize", [False, True])
async def test_answerable_task_gives_the_right_table(serve, make_graph, summarize):
    agents = VeloriaAgents()
    srv = await serve(with_summarizer(agents))
    result = await make_graph(srv, summarize_pages=summarize).arun(QUESTION)

    assert result.status == "ok" and result.errors == []
    assert result.table == [
        {"River": n, "Length": f["length"], "Mouth": f["mouth"]} for n, f in RIVERS.items()
    ]
    assert result.answer.startswith("```markdown") and "All reports are in." not in result.answer
    u = result.usage
    assert (u.lead_calls, u.subagents, u.subagent_calls, u.failed_subagents) == (3, 5, 15, 0)
    assert u.calls == len(agent_requests(srv)) == 18
    assert sum(is_summary_request(r) for r in srv.requests) == (5 if summarize else 0)
    assert result.trajectory.used_access()


async def test_subagent_context_holds_only_the_task_and_its_own_subtask(serve, make_graph):
    agents = VeloriaAgents()
    srv = await serve(agents)
    await make_graph(srv).arun(QUESTION)
    subtasks = [LIST_TASK] + [river_task(n) for n in RIVERS]
    subs = [r for r in srv.requests if not is_lead(r)]
    assert len(subs) == 15
    for req in subs:
        own = subtask_of(req)
        text = json.dumps(req["messages"], ensure_ascii=False)
        assert QUESTION in text
        assert [s for s in subtasks if s in text] == [own]  # no sibling's subtask anywhere
        assert "# Subtask" not in text and "create_sub_agents" not in text  # nothing of the lead's context
        roles = [m["role"] for m in req["messages"]]
        assert roles[:2] == ["system", "user"] and roles.count("user") == 1
        assert roles[2:] == ["assistant", "tool"] * ((len(roles) - 2) // 2)
    # and the lead never sees a subagent's tool traffic, only the reports
    for req in (r for r in srv.requests if is_lead(r)):
        text = json.dumps(req["messages"], ensure_ascii=False)
        assert "# Search query:" not in text and "# Access URL:" not in text


async def test_collect_formats_reports_in_call_order_with_thinking_removed(serve, make_graph):
    # the first subagent answers last, and one report carries inline <think> text
    policy = ScriptedPolicy(
        lead=[spawn("SLOW one", "FAST two", "THINKER three"), Reply(content="done")],
        subagents={
            "SLOW one": [Reply(content="report one", delay=0.3)],
            "FAST two": [Reply(content="report two")],
            "THINKER three": [Reply(content="<think>private musing</think>report three", hermes_text=True)],
        },
    )
    srv = await serve(policy)
    await make_graph(srv).arun("Q")
    closing = [m for m in srv.requests[-1]["messages"] if m["role"] == "tool"][0]["content"]
    body = closing.split("\n\n(Your next reply is turn 2")[0]
    assert body == (
        "# Subtask 1:\nSLOW one\n# Result:\nreport one\n\n"
        "# Subtask 2:\nFAST two\n# Result:\nreport two\n\n"
        "# Subtask 3:\nTHINKER three\n# Result:\nreport three"
    )
    assert "private musing" not in json.dumps(srv.requests[-1])


async def test_trajectory_matches_what_the_server_returned_call_for_call(serve, make_graph):
    agents = VeloriaAgents()
    srv = await serve(with_summarizer(agents))
    result = await make_graph(srv, summarize_pages=True).arun(QUESTION, rollout_id="rollout-1")
    traj = Trajectory.model_validate_json(result.trajectory.to_json())  # survives the JSONL round trip
    assert traj.rollout_id == "rollout-1" and traj.question == QUESTION and traj.answer == result.answer

    served = [(req, resp) for req, resp in srv.completions if not is_summary_request(req)]
    turns = [(a, t) for a in traj.agents for t in a.turns]
    assert len(turns) == len(served) == 18
    unmatched = list(served)
    for agent, turn in turns:
        match = [p for p in unmatched if p[0]["messages"] == turn.messages and p[0]["tools"] == turn.tools]
        assert len(match) == 1, (agent.agent_id, turn.turn)
        req, resp = match[0]
        unmatched.remove(match[0])
        choice = resp["choices"][0]
        assert turn.prompt_token_ids == resp["prompt_token_ids"]
        assert turn.completion_token_ids == choice["token_ids"]
        assert turn.logprobs == [t["logprob"] for t in choice["logprobs"]["content"]]
        assert turn.finish_reason == choice["finish_reason"]
        assert turn.usage == {
            "prompt_tokens": resp["usage"]["prompt_tokens"],
            "completion_tokens": resp["usage"]["completion_tokens"],
        }
        assert turn.completion.content == (choice["message"]["content"] or "")
        assert turn.completion.reasoning == choice["message"].get("reasoning_content")
        assert [c["function"] for c in turn.completion.tool_calls] == [
            c["function"] for c in choice["message"]["tool_calls"]
        ]
    assert unmatched == []

    lead = traj.lead
    assert lead.agent_id == "lead" and lead.status == "ok" and [t.turn for t in lead.turns] == [1, 2, 3]
    assert [a.agent_id for a in traj.subagents] == ["w1.s1", "w2.s1", "w2.s2", "w2.s3", "w2.s4"]
    assert all(a.status == "ok" and [t.turn for t in a.turns] == [1, 2, 3] for a in traj.subagents)
    assert [a.index for a in traj.subagents] == [1, 1, 2, 3, 4]
    # each turn's messages are what that call sent, so later turns extend earlier ones
    for a in traj.agents:
        for prev, nxt in zip(a.turns, a.turns[1:], strict=False):
            assert nxt.messages[: len(prev.messages)] == prev.messages
    assert traj.longest_generation() == max(len(t.completion_token_ids) for _, t in turns)


async def test_progress_events_are_streamed(serve, make_graph):
    agents = VeloriaAgents()
    srv = await serve(agents)
    events: list[dict[str, Any]] = []
    result = await make_graph(srv).arun(QUESTION, on_event=events.append)
    assert result.status == "ok"
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["lead_turn", "wave", "subagent_start"]
    assert kinds.count("lead_turn") == 3 and kinds.count("wave") == 2
    assert kinds.count("subagent_start") == kinds.count("subagent_done") == 5
    assert kinds[-1] == "final" and events[-1]["status"] == "ok"
    done = [e for e in events if e["type"] == "subagent_done"]
    assert {(e["agent_id"], e["status"], e["turns"]) for e in done} == {
        ("w1.s1", "ok", 3),
        ("w2.s1", "ok", 3),
        ("w2.s2", "ok", 3),
        ("w2.s3", "ok", 3),
        ("w2.s4", "ok", 3),
    }
    wave2 = kinds.index("wave", kinds.index("wave") + 1)
    assert events[wave2]["subagents"] == 4
    # every subagent of wave 2 reports before the lead's third turn
    third = [i for i, k in enumerate(kinds) if k == "lead_turn"][2]
    assert all(i < third for i, e in enumerate(events) if e["type"] == "subagent_done")


async def test_langgraph_clients_see_progress_in_the_custom_stream(serve, make_graph):
    srv = await serve(VeloriaAgents())
    app = make_graph(srv).compile()
    seen = []
    async for _ns, chunk in app.astream({"question": QUESTION}, stream_mode="custom", subgraphs=True):
        seen.append(chunk["type"])
    assert seen.count("subagent_done") == 5 and seen[-1] == "final"


async def test_compiled_graph_is_a_runnable_inside_a_running_loop(serve, make_graph):
    srv = await serve(VeloriaAgents())
    app = make_graph(srv).compile()
    assert isinstance(app, CompiledStateGraph)
    state = await app.ainvoke({"question": QUESTION})
    assert state["status"] == "ok"
    assert "| Corvo | 655 km | Gulf of Tamar |" in state["answer"]
    assert set(state) == {"answer", "table", "status"}  # the output schema: nothing internal leaks out
    full = await make_graph(srv).compile(full_output=True).ainvoke({"question": QUESTION})
    assert Trajectory.model_validate(full["trajectory"]).lead.status == "ok"


def test_compiled_graph_across_successive_asyncio_runs(corpus_path, index_dir):
    from langgraph_wideseek import WideSeekConfig

    with FakeOpenAIServer(VeloriaAgents()).start_in_thread() as ts:
        cfg = WideSeekConfig(
            base_url=ts.base_url, model="m", corpus=corpus_path, index_dir=index_dir, summarize_pages=False
        )
        graph = WideSeekGraph(cfg)
        app = graph.compile(full_output=True)
        first = asyncio.run(app.ainvoke({"question": QUESTION}))
        second = asyncio.run(app.ainvoke({"question": QUESTION}))
        assert first["answer"] == second["answer"] and "| Amsel | 412 km | Northern Sea |" in first["answer"]
        assert first["trajectory"]["rollout_id"] != second["trajectory"]["rollout_id"]
        assert graph.run(QUESTION).status == "ok"  # the sync helper, on yet another loop


async def test_arun_rejects_an_empty_question(serve, make_graph):
    srv = await serve(VeloriaAgents())
    with pytest.raises(ValueError, match="non-empty"):
        await make_graph(srv).arun("   ")
    assert srv.requests == []


async def test_chinese_prompts_run_end_to_end(serve, make_graph):
    policy = ScriptedPolicy(
        lead=[spawn("查找青河的长度"), Reply(content="\\boxed{三百公里}")],
        subagents={
            "查找青河的长度": [
                Reply(tool_calls=[call("search", queries=[{"query": "青河"}])]),
                Reply(content="青河全长三百公里。"),
            ]
        },
    )
    srv = await serve(policy)
    result = await make_graph(srv, language="zh").arun("青河有多长？")
    assert result.status == "ok" and result.boxed == "三百公里" and policy.failures == []
    sub_second = [r for r in srv.requests if not is_lead(r)][1]
    tool_msg = last_tool_text(sub_second)
    assert "# Search query: 青河" in tool_msg and "https://zh.example.org/青河" in tool_msg
    assert "维洛里亚东部" in tool_msg
    assert "下一条回复是第 2 轮" in tool_msg  # the turn hint in Chinese


@pytest.mark.parametrize("summarize", [False, True])
async def test_nothing_blocks_the_event_loop(serve, make_graph, summarize):
    """`langgraph dev` fails any blocking call made on its event loop (blockbuster); so do we."""
    blockbuster = pytest.importorskip("blockbuster")
    srv = await serve(with_summarizer(VeloriaAgents()))
    graph = make_graph(srv, summarize_pages=summarize)  # building the graph may block: it happens at import
    with blockbuster.blockbuster_ctx(["langgraph_wideseek"]):
        result = await graph.arun(QUESTION)
    assert result.errors == [] and result.table is not None and len(result.table) == len(RIVERS)


async def test_a_thread_with_a_checkpointer_answers_each_new_question(serve, make_graph, caplog):
    """Studio and embedding apps keep a thread's state: a second question must start a fresh run."""
    from langgraph.checkpoint.memory import InMemorySaver

    def policy(req: dict[str, Any]) -> Reply:
        task = req["messages"][1]["content"].split("\n")[1]
        return Reply(content=f"\\boxed{{{task}}}")

    srv = await serve(policy)
    app = make_graph(srv).compile(checkpointer=InMemorySaver(), full_output=True)
    conf = {"configurable": {"thread_id": "t1"}}
    with caplog.at_level(logging.DEBUG):
        first = await app.ainvoke({"question": "first question"}, conf)
        second = await app.ainvoke({"question": "second question"}, conf)
    assert first["boxed"] == "first question" and second["boxed"] == "second question"
    assert [len(r["messages"]) for r in srv.requests] == [2, 2]  # no context carried over
    t1, t2 = Trajectory.model_validate(first["trajectory"]), Trajectory.model_validate(second["trajectory"])
    assert t1.rollout_id != t2.rollout_id and t2.question == "second question"
    assert len(t2.lead.turns) == 1 and t2.num_calls() == 1
    # the state holds only types every checkpointer serialises without special permission
    assert not [r for r in caplog.records if "unregistered type" in r.getMessage()]
    snapshot = await app.aget_state(conf)
    assert snapshot.values["answer"] == second["answer"]
    json.dumps(snapshot.values["trajectory"])


async def test_a_server_without_tool_and_reasoning_parsers(serve, make_graph):
    """vLLM started without --enable-auto-tool-choice/--reasoning-parser: everything arrives as text."""
    agents = VeloriaAgents()

    def raw_text(req: dict[str, Any]) -> Reply:
        reply = agents(req)
        reply.hermes_text = True
        return reply

    srv = await serve(raw_text)
    result = await make_graph(srv).arun(QUESTION)
    assert result.status == "ok" and result.errors == []
    assert len(result.table) == len(RIVERS)
    first = result.trajectory.lead.turns[0]
    assert first.completion.reasoning == "Split the task." and "<tool_call>" not in first.completion.content
    assert first.completion.tool_calls[0]["function"]["name"] == "create_sub_agents"
    # what goes back to the server is structured again, as a parser-less template would render it
    second_lead_request = [r for r in srv.requests if is_lead(r)][1]
    assert second_lead_request["messages"][2]["tool_calls"][0]["function"]["name"] == "create_sub_agents"


@pytest.mark.parametrize("keep", [True, False])
async def test_keep_reasoning_controls_what_goes_back_to_the_model(serve, make_graph, keep):
    srv = await serve(VeloriaAgents())
    result = await make_graph(srv, keep_reasoning=keep).arun(QUESTION)
    later = [r for r in srv.requests if turn_index(r) > 0]
    sent = any("reasoning_content" in m for r in later for m in r["messages"])
    assert sent is keep
    # the trajectory always records each turn's own reasoning
    assert result.trajectory.lead.turns[0].completion.reasoning == "Split the task."


async def test_separate_summariser_endpoint_and_keys_kept_out_of_results(serve, make_graph):
    main_key, sum_key = "sk-main-3c1d9e", "sk-summary-77ab02"
    summariser = await serve(echo_summary, api_key=sum_key)
    srv = await serve(VeloriaAgents(), api_key=main_key)
    graph = make_graph(
        srv,
        api_key=main_key,
        summarize_pages=True,
        summary_base_url=summariser.base_url,
        summary_model="small-model",
        summary_api_key=sum_key,
    )
    result = await graph.arun(QUESTION)
    assert result.status == "ok" and len(result.table) == len(RIVERS)
    assert len(summariser.requests) == 5 and all(r["model"] == "small-model" for r in summariser.requests)
    assert not any(is_summary_request(r) for r in srv.requests)
    dumped = result.model_dump_json()
    assert main_key not in dumped and sum_key not in dumped


async def test_an_injected_langchain_chat_model(serve, make_graph):
    """Any LangChain chat model with bind_tools can play every role; what it does not return is null."""
    langchain_openai = pytest.importorskip("langchain_openai")
    srv = await serve(VeloriaAgents())
    llm = langchain_openai.ChatOpenAI(base_url=srv.base_url, api_key="unused", model="m", max_retries=0)
    try:
        result = await make_graph(srv, llm=llm).arun(QUESTION)
    finally:
        await llm.root_async_client.close()  # the graph closes only clients it knows
    assert result.status == "ok" and result.errors == [] and len(result.table) == len(RIVERS)
    turn = result.trajectory.lead.turns[0]
    assert turn.completion_token_ids is None and turn.logprobs is None
    assert turn.usage["completion_tokens"] > 0 and turn.finish_reason == "tool_calls"
