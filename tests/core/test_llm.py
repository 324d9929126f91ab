"""ChatVLLM over real HTTP: vLLM extras kept, hermes parsed client-side, retries, errors, secrets, limiter."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
import warnings
from typing import Any

import pytest
from aiohttp import web
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langgraph_wideseek.errors import ContextOverflowError, ModelRequestError, ModelUnavailableError
from langgraph_wideseek.model import ChatVLLM, message_to_openai, parse_completion
from langgraph_wideseek.testing import (
    FakeOpenAIServer,
    Reply,
    render_prompt,
    toy_logprob,
    toy_tokenize,
)

from .helpers import call

SECRET = "sk-test-7f3a9c1e5b2d4a68"


def llm_for(srv: FakeOpenAIServer | str, **kw: Any) -> ChatVLLM:
    base = srv if isinstance(srv, str) else srv.base_url
    kw.setdefault("retry_base_delay", 0.01)
    return ChatVLLM(base_url=base, model="fake-model", **kw)


class Sequence_:
    """A policy that plays ``replies`` in order, then repeats the last one."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.n = 0

    def __call__(self, req: dict[str, Any]) -> Reply:
        r = self.replies[min(self.n, len(self.replies) - 1)]
        self.n += 1
        return r


# ---------------------------------------------------------------------------------------- what is kept
async def test_keeps_token_ids_logprobs_reasoning_and_usage(serve):
    srv = await serve(lambda req: Reply(reasoning="Let me think.", content="The answer is 42."))
    llm = llm_for(srv)
    ai = await llm.ainvoke([SystemMessage("sys"), HumanMessage("question?")])
    await llm.aclose()

    req = srv.requests[0]
    assert req["return_token_ids"] is True and req["logprobs"] is True
    assert req["temperature"] == 1.0 and req["top_p"] == 1.0
    assert "repetition_penalty" not in req and "top_k" not in req

    raw = "<think>\nLet me think.\n</think>\n\nThe answer is 42."
    want_completion = toy_tokenize(raw)
    want_prompt = toy_tokenize(render_prompt(req["messages"], req.get("tools")))
    assert ai.content == "The answer is 42."
    assert ai.additional_kwargs["reasoning_content"] == "Let me think."
    md = ai.response_metadata
    assert md["prompt_token_ids"] == want_prompt
    assert md["token_ids"] == want_completion
    assert md["logprobs"] == [toy_logprob(t) for t in want_completion]
    assert md["finish_reason"] == "stop"
    assert ai.usage_metadata["input_tokens"] == len(want_prompt)
    assert ai.usage_metadata["output_tokens"] == len(want_completion)


async def test_parsed_tool_calls_and_bound_tools(serve):
    srv = await serve(lambda req: Reply(tool_calls=[call("search", queries=[{"query": "Amsel river"}])]))
    schema = {
        "type": "function",
        "function": {
            "name": "search",
            "description": "d",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    llm = llm_for(srv)
    ai = await llm.bind_tools([schema]).ainvoke([HumanMessage("find it")], max_tokens=77)
    await llm.aclose()
    assert srv.requests[0]["tools"] == [schema]
    assert srv.requests[0]["max_tokens"] == 77
    assert [(c["name"], c["args"]) for c in ai.tool_calls] == [
        ("search", {"queries": [{"query": "Amsel river"}]})
    ]
    assert ai.invalid_tool_calls == []
    assert ai.response_metadata["finish_reason"] == "tool_calls"


async def test_hermes_text_is_parsed_client_side(serve):
    search = call("search", queries=[{"query": "Brenna", "count": 2}])
    srv = await serve(
        lambda req: Reply(
            reasoning="I should search.", content="Searching now.", tool_calls=[search], hermes_text=True
        )
    )
    llm = llm_for(srv)
    ai = await llm.ainvoke([HumanMessage("q")])
    await llm.aclose()
    assert "<tool_call>" not in ai.content and "<think>" not in ai.content
    assert ai.content == "Searching now."
    assert ai.additional_kwargs["reasoning_content"] == "I should search."
    assert [(c["name"], c["args"]) for c in ai.tool_calls] == [
        ("search", {"queries": [{"query": "Brenna", "count": 2}]})
    ]
    assert ai.response_metadata["token_ids"]  # ids of the raw text are still there


@pytest.mark.parametrize("hermes", [False, True])
async def test_invalid_tool_call_json_becomes_invalid_tool_call(serve, hermes):
    bad = '{"queries": [{"query": "Amsel"'
    srv = await serve(
        lambda req: Reply(tool_calls=[{"name": "search", "arguments": bad}], hermes_text=hermes)
    )
    llm = llm_for(srv)
    ai = await llm.ainvoke([HumanMessage("q")])
    await llm.aclose()
    assert ai.tool_calls == []
    assert len(ai.invalid_tool_calls) == 1
    inv = ai.invalid_tool_calls[0]
    assert "JSON" in inv["error"] or "json" in inv["error"].lower()
    assert inv["id"]
    # Sent back, the malformed call stays visible to the model as the text it wrote.
    wire = message_to_openai(ai)
    assert "tool_calls" not in wire
    assert "<tool_call>" in wire["content"] and "Amsel" in wire["content"]


async def test_tool_call_arguments_not_an_object_is_invalid(serve):
    srv = await serve(lambda req: Reply(tool_calls=[{"name": "search", "arguments": "[1, 2]"}]))
    llm = llm_for(srv)
    ai = await llm.ainvoke([HumanMessage("q")])
    await llm.aclose()
    assert ai.tool_calls == [] and "JSON object" in ai.invalid_tool_calls[0]["error"]


# ------------------------------------------------------------------------------------------- retries
@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_transient_errors_are_retried_with_backoff(serve, status):
    policy = Sequence_(Reply(status=status), Reply(status=status), Reply(content="ok"))
    srv = await serve(policy)
    llm = llm_for(srv, retry_base_delay=0.05, max_retries=3)
    t0 = time.perf_counter()
    ai = await llm.ainvoke([HumanMessage("q")])
    elapsed = time.perf_counter() - t0
    await llm.aclose()
    assert ai.content == "ok"
    assert srv.stats.requests == 3
    # backoff 0.05 then 0.1 (each +-25% jitter): at least 0.11 s in total
    assert elapsed >= 0.11


async def test_retry_after_header_is_honoured(serve):
    policy = Sequence_(Reply(status=429, headers={"Retry-After": "0.4"}), Reply(content="ok"))
    srv = await serve(policy)
    llm = llm_for(srv, retry_base_delay=0.001)
    t0 = time.perf_counter()
    ai = await llm.ainvoke([HumanMessage("q")])
    elapsed = time.perf_counter() - t0
    await llm.aclose()
    assert ai.content == "ok"
    assert elapsed >= 0.4


async def test_gives_up_after_max_retries(serve, caplog):
    srv = await serve(lambda req: Reply(status=503, error="engine overloaded"))
    llm = llm_for(srv, max_retries=2)
    with caplog.at_level(logging.WARNING, logger="langgraph_wideseek.model.chat"):
        with pytest.raises(ModelUnavailableError) as ei:
            await llm.ainvoke([HumanMessage("q")])
    await llm.aclose()
    assert srv.stats.requests == 3
    assert "3 attempts" in str(ei.value) and "503" in str(ei.value) and "engine overloaded" in str(ei.value)
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 2


async def test_request_timeout_is_retried_then_reported(serve):
    srv = await serve(lambda req: Reply(content="late", delay=0.8))
    llm = llm_for(srv, request_timeout=0.2, max_retries=1)
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="timed out"):
        await llm.ainvoke([HumanMessage("q")])
    elapsed = time.perf_counter() - t0
    await llm.aclose()
    assert srv.stats.requests == 2
    assert elapsed < 1.5


async def test_timeout_then_success(serve):
    srv = await serve(Sequence_(Reply(content="late", delay=0.6), Reply(content="on time")))
    llm = llm_for(srv, request_timeout=0.2, max_retries=2)
    ai = await llm.ainvoke([HumanMessage("q")])
    await llm.aclose()
    assert ai.content == "on time"


async def test_connection_refused_is_model_unavailable():
    # A port that was free a moment ago: nothing listens there.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = llm_for(f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(ModelUnavailableError, match="connection error"):
        await llm.ainvoke([HumanMessage("q")])
    await llm.aclose()


async def test_context_length_error_is_context_overflow_and_not_retried(serve):
    srv = await serve(lambda req: Reply(content="x"), max_context=40)
    llm = llm_for(srv)
    with pytest.raises(ContextOverflowError) as ei:
        await llm.ainvoke([HumanMessage("a long question " * 30)])
    await llm.aclose()
    assert srv.stats.requests == 1
    assert ei.value.status == 400 and "maximum context length" in str(ei.value)


async def test_other_400_is_request_error_without_retry(serve):
    srv = await serve(lambda req: Reply(status=400, error="temperature must be non-negative"))
    llm = llm_for(srv)
    with pytest.raises(ModelRequestError) as ei:
        await llm.ainvoke([HumanMessage("q")])
    await llm.aclose()
    assert not isinstance(ei.value, ContextOverflowError)
    assert srv.stats.requests == 1 and "temperature must be non-negative" in str(ei.value)


async def test_401_is_not_retried(serve):
    srv = await serve(lambda req: Reply(content="never"), api_key="the-right-key")
    llm = llm_for(srv, api_key="a-wrong-key")
    with pytest.raises(ModelRequestError) as ei:
        await llm.ainvoke([HumanMessage("q")])
    await llm.aclose()
    assert ei.value.status == 401
    assert srv.stats.requests == 0 and srv.stats.errors == 1  # rejected at the door, once


async def test_api_key_is_sent_as_bearer(serve):
    srv = await serve(lambda req: Reply(content="welcome"), api_key=SECRET)
    llm = llm_for(srv, api_key=SECRET)
    assert (await llm.ainvoke([HumanMessage("q")])).content == "welcome"
    await llm.aclose()


# ------------------------------------------------------------------------------------------- secrets
class EchoingServer:
    """A hostile server that echoes the Authorization header back in its error bodies."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.hits = 0

    async def __aenter__(self) -> str:
        async def handler(request: web.Request) -> web.Response:
            self.hits += 1
            auth = request.headers.get("Authorization", "")
            body = {"error": {"message": f"bad credentials {auth} (key={auth.removeprefix('Bearer ')})"}}
            return web.json_response(body, status=self.status)

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def _all_text_of(exc: BaseException) -> str:
    parts = []
    e: BaseException | None = exc
    while e is not None:
        parts += [str(e), repr(e)]
        e = e.__cause__ or e.__context__
    return "\n".join(parts)


@pytest.mark.parametrize("status", [401, 500])
async def test_api_key_never_in_exceptions_or_logs(status, caplog):
    echo = EchoingServer(status)
    async with echo as base_url:
        llm = llm_for(base_url, api_key=SECRET, max_retries=2)
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(ModelRequestError if status == 401 else ModelUnavailableError) as ei:
                await llm.ainvoke([HumanMessage("q")])
        await llm.aclose()
    assert echo.hits == (1 if status == 401 else 3)
    text = _all_text_of(ei.value)
    assert "bad credentials" in text  # the server's message is kept ...
    assert SECRET not in text  # ... with the key redacted
    assert "***" in text
    logged = "\n".join(r.getMessage() + str(r.args) + str(r.exc_text or "") for r in caplog.records)
    assert SECRET not in logged
    if status == 500:
        assert "bad credentials" in logged  # the retries were logged, redacted
    assert SECRET not in repr(llm) and SECRET not in str(llm.model_dump())
    assert SECRET not in llm.model_dump_json()


# ----------------------------------------------------------------------------------- non-vLLM servers
@pytest.mark.parametrize("option", ["return_token_ids", "logprobs"])
async def test_server_rejecting_vllm_extras_gets_them_dropped(serve, option, caplog):
    def policy(req: dict[str, Any]) -> Reply:
        if option in req:
            return Reply(status=400, error=f"Unrecognized request argument supplied: {option}")
        return Reply(content="plain")

    srv = await serve(policy)
    llm = llm_for(srv)
    with caplog.at_level(logging.WARNING, logger="langgraph_wideseek.model.chat"):
        first = await llm.ainvoke([HumanMessage("q")])
    second = await llm.ainvoke([HumanMessage("q2")])
    await llm.aclose()
    assert first.content == second.content == "plain"
    # one rejected request, then the retry without the option; the next call does not try again
    assert [option in r for r in srv.requests] == [True, False, False]
    other = "logprobs" if option == "return_token_ids" else "return_token_ids"
    assert all(other in r for r in srv.requests)
    key = "token_ids" if option == "return_token_ids" else "logprobs"
    assert first.response_metadata[key] is None
    assert any(option in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------ loops and limits
def test_same_model_across_successive_asyncio_runs():
    with FakeOpenAIServer(lambda req: Reply(content="pong")).start_in_thread() as ts:
        llm = llm_for(ts.base_url)

        async def once() -> str:
            try:
                return (await llm.ainvoke([HumanMessage("ping")])).content
            finally:
                await llm.aclose()

        assert asyncio.run(once()) == "pong"
        assert asyncio.run(once()) == "pong"
        assert llm.invoke([HumanMessage("ping")]).content == "pong"  # the sync path on a private loop
        assert ts.server.stats.requests == 3


def test_successive_asyncio_runs_without_explicit_close(caplog):
    """Users of ainvoke rarely close the model: each loop gets a session, closed when that loop ends."""
    with FakeOpenAIServer(lambda req: Reply(content="pong")).start_in_thread() as ts:
        llm = llm_for(ts.base_url)
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR, logger="asyncio"):
            warnings.simplefilter("always")
            for _ in range(3):
                assert asyncio.run(llm.ainvoke([HumanMessage("ping")])).content == "pong"
            del llm
            gc.collect()
    leaks = [str(w.message) for w in caught if "nclosed" in str(w.message)]
    leaks += [r.getMessage() for r in caplog.records if "nclosed" in r.getMessage()]
    assert leaks == []


async def test_sync_invoke_inside_a_running_loop():
    # a sync caller inside async code (a sync tool, a callback) runs on a worker thread's loop; the server
    # lives on its own thread because this loop is blocked for the duration of the call
    with FakeOpenAIServer(lambda req: Reply(content="pong")).start_in_thread() as ts:
        llm = llm_for(ts.base_url)
        assert llm.invoke([HumanMessage("ping")]).content == "pong"
        assert (await llm.ainvoke([HumanMessage("ping")])).content == "pong"
        await llm.aclose()


async def test_shared_endpoint_limiter_caps_inflight(serve):
    srv = await serve(lambda req: Reply(content="ok", delay=0.1))
    a = llm_for(srv, max_inflight=3)
    b = llm_for(srv, max_inflight=3)  # another client of the same endpoint shares the 3 slots
    t0 = time.perf_counter()
    outs = await asyncio.gather(*(m.ainvoke([HumanMessage(f"q{i}")]) for i in range(6) for m in (a, b)))
    elapsed = time.perf_counter() - t0
    await a.aclose()
    await b.aclose()
    assert [o.content for o in outs] == ["ok"] * 12
    assert srv.stats.peak_inflight == 3
    assert elapsed >= 0.4  # 12 requests of 0.1 s through 3 slots: 4 rounds


async def test_unlimited_clients_really_overlap(serve):
    srv = await serve(lambda req: Reply(content="ok", delay=0.2))
    llm = llm_for(srv)
    t0 = time.perf_counter()
    await asyncio.gather(*(llm.ainvoke([HumanMessage(f"q{i}")]) for i in range(20)))
    elapsed = time.perf_counter() - t0
    await llm.aclose()
    assert srv.stats.peak_inflight == 20
    assert elapsed < 1.5  # serial would take 4 s


# --------------------------------------------------------------------------------------- wire format
def test_message_to_openai_round_trips_tool_calls_and_reasoning():
    raw_args = '{"queries": [{"query": "Corvo"}]}'
    ai = AIMessage(
        content="",
        tool_calls=[{"name": "search", "args": {"queries": [{"query": "Corvo"}]}, "id": "c1"}],
        additional_kwargs={
            "reasoning_content": "hmm",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "search", "arguments": raw_args}}
            ],
        },
    )
    wire = message_to_openai(ai)
    assert wire["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "search", "arguments": raw_args}}
    ]
    assert wire["reasoning_content"] == "hmm"
    assert "reasoning_content" not in message_to_openai(ai, keep_reasoning=False)
    assert message_to_openai(ToolMessage("res", tool_call_id="c1")) == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "res",
    }


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": [{"index": 0}]}])
def test_malformed_completion_body_is_a_clear_error(body):
    with pytest.raises(ModelRequestError, match="malformed chat completion"):
        parse_completion(body)


def test_reasoning_in_content_without_parser_is_split():
    data = {"choices": [{"message": {"content": "<think>why</think>\n\nbecause"}, "finish_reason": "stop"}]}
    ai = parse_completion(data)
    assert ai.content == "because" and ai.additional_kwargs["reasoning_content"] == "why"
    assert ai.response_metadata["token_ids"] is None and ai.response_metadata["logprobs"] is None
    assert json.loads(json.dumps(ai.response_metadata))  # metadata stays JSON-serialisable
