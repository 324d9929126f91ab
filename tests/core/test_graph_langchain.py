"""The graph as a LangChain/LangGraph citizen: JSON schemas on 3.11, input/output schemas, a node of a
MessagesState parent, per-run context, other chat models (ChatOpenAI, init_chat_model, content blocks)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph import START, MessagesState, StateGraph

from langgraph_wideseek.errors import ConfigError
from langgraph_wideseek.graph.context import WideSeekContext
from langgraph_wideseek.testing import Reply, ScriptedPolicy, is_lead

from .helpers import QUESTION, RIVERS, VeloriaAgents, spawn


def test_json_schemas_of_input_output_and_context(serve_free_graph):
    app = serve_free_graph.compile()
    inp, out = app.get_input_jsonschema(), app.get_output_jsonschema()
    assert set(inp["properties"]) == {"question", "messages", "rollout_id"}
    assert set(out["properties"]) == {"answer", "table", "status", "messages"}
    ctx = app.get_context_jsonschema()
    assert ctx is not None
    assert {"max_subagents", "max_lead_turns", "max_subagent_turns", "subagent_timeout", "language"} <= set(
        ctx["properties"]
    )


@pytest.fixture
def serve_free_graph(make_graph):
    return make_graph("http://127.0.0.1:9/v1")


async def test_a_node_of_a_messages_state_parent_adds_exactly_one_ai_message(serve, make_graph):
    srv = await serve(VeloriaAgents())
    parent = StateGraph(MessagesState)
    parent.add_node("wideseek", make_graph(srv).compile())
    parent.add_edge(START, "wideseek")
    history = [SystemMessage("be brief"), HumanMessage("an older question"), AIMessage("an older answer")]
    out = await parent.compile().ainvoke({"messages": [*history, HumanMessage(QUESTION)]})
    msgs = out["messages"]
    assert len(msgs) == len(history) + 2  # the question, and one answer: nothing of the lead's own traffic
    answer = msgs[-1]
    assert isinstance(answer, AIMessage) and answer.name == "wideseek" and not answer.tool_calls
    assert "| Corvo | 655 km | Gulf of Tamar |" in answer.text
    lead_first = next(r for r in srv.requests if is_lead(r))
    assert QUESTION in lead_first["messages"][1]["content"]  # the last human message was the question
    assert "an older question" not in str(lead_first["messages"])


async def test_messages_in_answer_message_out_and_question_in_no_messages_out(serve, make_graph):
    srv = await serve(ScriptedPolicy(lead=[Reply(content="\\boxed{42}")]))
    app = make_graph(srv).compile()
    out = await app.ainvoke({"messages": [("user", "what is six times seven?")]})
    assert set(out) == {"answer", "table", "status", "messages"}
    assert [m.text for m in out["messages"]] == ["\\boxed{42}"]
    plain = await app.ainvoke({"question": "what is six times seven?"})
    assert "messages" not in plain and plain["answer"] == "\\boxed{42}"
    with pytest.raises(ValueError, match="no human message"):
        await app.ainvoke({"messages": [("ai", "hello")]})
    with pytest.raises(ValueError, match="non-empty 'question'"):
        await app.ainvoke({})


async def test_a_failed_run_answers_its_messages_with_the_reason(serve, make_graph):
    srv = await serve(lambda req: Reply(status=400, error="this model refuses"))
    out = await make_graph(srv).compile().ainvoke({"messages": [HumanMessage("q")]})
    assert out["status"] == "failed" and out["answer"] is None
    assert out["messages"][0].text.startswith("The wide search failed: lead: ")


async def test_context_changes_limits_and_language_per_run(serve, make_graph):
    wave = spawn(*[f"task {i}" for i in range(5)])
    policy = ScriptedPolicy(
        lead=[wave, Reply(content="\\boxed{done}")],
        default_subagent=lambda req, k: Reply(content="report"),
    )
    srv = await serve(policy)
    graph = make_graph(srv)
    app = graph.compile()
    await app.ainvoke({"question": "q"}, context={"max_subagents": 2, "language": "zh"})
    subs = [r for r in srv.requests if not is_lead(r)]
    assert len(subs) == 2  # two of five ran
    lead_second = [r for r in srv.requests if is_lead(r)][1]
    assert "5" in lead_second["messages"][-1]["content"] or "3" in lead_second["messages"][-1]["content"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in lead_second["messages"][0]["content"])  # Chinese prompt

    srv.requests.clear()
    result = await graph.arun("q", context=WideSeekContext(max_subagents=4))
    assert result.status == "ok" and len([r for r in srv.requests if not is_lead(r)]) == 4
    srv.requests.clear()
    await app.ainvoke({"question": "q"})  # no context: the config's limit (10) and language
    assert len([r for r in srv.requests if not is_lead(r)]) == 5
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in srv.requests[0]["messages"][0]["content"])


async def test_context_turn_limit_stops_the_lead(serve, make_graph):
    srv = await serve(
        ScriptedPolicy(lead=[spawn("a"), spawn("b")], default_subagent=lambda r, k: Reply(content="ok"))
    )
    result = await make_graph(srv).arun("q", context={"max_lead_turns": 1})
    assert result.status == "failed" and "turn limit (1)" in result.errors[0]


def test_context_values_are_checked():
    with pytest.raises(ConfigError, match="max_subagents"):
        WideSeekContext(max_subagents=0)
    with pytest.raises(ConfigError, match="language"):
        WideSeekContext(language="fr")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="subagent_timeout"):
        WideSeekContext(subagent_timeout=-1)
    with pytest.raises(ConfigError, match="unknown context keys"):
        WideSeekContext.of({"max_subagent": 3})
    assert WideSeekContext.of(object()) is None  # a parent graph's own context: the config holds


@pytest.mark.parametrize("logprobs", [False, True])
@pytest.mark.parametrize("how", ["ChatOpenAI", "init_chat_model"])
async def test_other_chat_models_with_and_without_logprobs(serve, make_graph, how, logprobs):
    pytest.importorskip("langchain_openai")
    srv = await serve(VeloriaAgents())
    kw: dict[str, Any] = dict(base_url=srv.base_url, api_key="unused", max_retries=0)
    if logprobs:
        kw["logprobs"] = True
    if how == "ChatOpenAI":
        from langchain_openai import ChatOpenAI

        llm: Any = ChatOpenAI(model="m", **kw)
    else:
        from langchain.chat_models import init_chat_model

        llm = init_chat_model("openai:m", **kw)
    try:
        result = await make_graph(srv, llm=llm).arun(QUESTION)
    finally:
        await llm.root_async_client.close()
    assert result.status == "ok" and result.errors == [] and len(result.table) == len(RIVERS)
    turn = result.trajectory.lead.turns[0]
    assert turn.completion_token_ids is None and turn.notes is None
    if logprobs:  # OpenAI's logprob objects, read: one float per generated token, as the server sent
        first_lead = next(c for q, c in srv.completions if is_lead(q))
        sent = first_lead["choices"][0]["logprobs"]["content"]
        assert turn.logprobs == [e["logprob"] for e in sent]
    else:
        assert turn.logprobs is None


class BlockModel(BaseChatModel):
    """A chat model whose replies are content blocks (Anthropic with thinking, the Responses API)."""

    inner: Any

    @property
    def _llm_type(self) -> str:
        return "blocks"

    def bind_tools(self, tools: Any, **kw: Any) -> Any:
        return self.__class__(inner=self.inner.bind_tools(tools, **kw))

    def _generate(self, *a: Any, **kw: Any) -> ChatResult:
        raise NotImplementedError

    async def _agenerate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        ai = await self.inner.ainvoke(messages, **kw)
        blocks: list[Any] = [{"type": "thinking", "thinking": "hmm", "signature": "s"}]
        if ai.content:
            blocks.append({"type": "text", "text": ai.content})
        msg = AIMessage(content=blocks, tool_calls=ai.tool_calls, response_metadata=ai.response_metadata)
        return ChatResult(generations=[ChatGeneration(message=msg)])


async def test_a_model_that_answers_in_content_blocks(serve, make_graph):
    from langgraph_wideseek.model import ChatVLLM

    srv = await serve(VeloriaAgents())
    inner = ChatVLLM(base_url=srv.base_url, model="m", retry_base_delay=0.01)
    result = await make_graph(srv, llm=BlockModel(inner=inner)).arun(QUESTION)
    await inner.aclose()
    assert result.status == "ok" and len(result.table) == len(RIVERS)
    assert result.answer.startswith("```markdown") and "thinking" not in result.answer
    rec = result.trajectory.lead.turns[-1]
    assert rec.completion.content == result.answer
    sent_back = [m["content"] for m in srv.requests[-1]["messages"] if m["role"] == "assistant"]
    assert sent_back and all(isinstance(c, str) and "thinking" not in c for c in sent_back)  # no reprs
