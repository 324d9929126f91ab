"""ChatVLLM as a LangChain chat model: tool_choice in the forms vLLM accepts, structured output, env
fallbacks, LangSmith parameters, and stream errors (each checked on the request the server received)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel, Field

from langgraph_wideseek.errors import ModelRequestError, ModelUnavailableError
from langgraph_wideseek.model import ChatVLLM
from langgraph_wideseek.testing import AssistantPolicy

from .test_llm import llm_for


class Weather(BaseModel):
    """Weather at a place."""

    city: str = Field(description="the city")
    degrees: int


def lookup(city: str) -> str:
    """Look a city up."""
    return city


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("any", "required"),
        (True, "required"),
        ("required", "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("lookup", {"type": "function", "function": {"name": "lookup"}}),
        (
            {"type": "function", "function": {"name": "Weather"}},
            {"type": "function", "function": {"name": "Weather"}},
        ),
        (None, None),
        (False, None),
    ],
)
async def test_tool_choice_is_sent_in_a_form_vllm_accepts(serve, choice, sent):
    srv = await serve(AssistantPolicy())
    llm = llm_for(srv)
    reply = await llm.bind_tools([Weather, lookup], tool_choice=choice).ainvoke("Weather in 'Paris' is 21?")
    await llm.aclose()
    assert srv.requests[0].get("tool_choice") == sent
    if sent not in (None, "none"):  # the assistant calls what it was told to
        want = "lookup" if sent != "required" and "lookup" in str(sent) else "Weather"
        assert reply.tool_calls[0]["name"] == want


def test_unknown_tool_names_and_shapes_are_refused_before_sending():
    llm = ChatVLLM(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="not one of the bound tools"):
        llm.bind_tools([lookup], tool_choice="nope")
    with pytest.raises(ValueError, match="unsupported tool_choice"):
        llm.bind_tools([lookup], tool_choice=3)  # type: ignore[arg-type]


def test_strict_and_parallel_tool_calls_are_passed_on():
    bound = ChatVLLM(base_url="http://127.0.0.1:9/v1").bind_tools(
        [lookup], strict=True, parallel_tool_calls=False
    )
    kwargs: dict[str, Any] = bound.kwargs  # type: ignore[attr-defined]
    assert kwargs["tools"][0]["function"]["strict"] is True
    assert kwargs["parallel_tool_calls"] is False


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
async def test_structured_output_both_methods(serve, method):
    srv = await serve(AssistantPolicy())
    llm = llm_for(srv)
    out = await llm.with_structured_output(Weather, method=method).ainvoke("Weather in 'Oslo': 4 degrees")
    raw = await llm.with_structured_output(
        Weather.model_json_schema(), method=method, include_raw=True
    ).ainvoke("Weather in 'Rome': 30 degrees")
    await llm.aclose()
    assert out == Weather(city="Oslo", degrees=4)
    assert raw["parsed"] == {"city": "Rome", "degrees": 30} and raw["parsing_error"] is None
    req = srv.requests[0]
    if method == "function_calling":
        assert req["tool_choice"] == {"type": "function", "function": {"name": "Weather"}}
    else:
        assert req["response_format"]["type"] == "json_schema"
        assert req["response_format"]["json_schema"]["name"] == "Weather"
        assert "tools" not in req


async def test_structured_output_parsing_errors_with_include_raw(serve):
    from langgraph_wideseek.testing import Reply

    srv = await serve(lambda req: Reply(content="not json at all"))
    llm = llm_for(srv)
    out = await llm.with_structured_output(Weather, method="json_mode", include_raw=True).ainvoke("q")
    await llm.aclose()
    assert out["parsed"] is None and out["parsing_error"] is not None
    assert out["raw"].content == "not json at all"
    assert srv.requests[0]["response_format"] == {"type": "json_object"}


def test_structured_output_refuses_what_it_cannot_do():
    llm = ChatVLLM(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="needs a schema"):
        llm.with_structured_output(None)
    with pytest.raises(ValueError, match="needs a schema"):
        llm.with_structured_output(None, method="json_schema")
    with pytest.raises(ValueError, match="unknown method"):
        llm.with_structured_output(Weather, method="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unexpected arguments"):
        llm.with_structured_output(Weather, tools=[])


def test_env_fallbacks_and_explicit_values(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:7/v1")
    llm = ChatVLLM()
    assert llm.base_url == "http://127.0.0.1:7/v1"
    assert llm.api_key is not None and llm.api_key.get_secret_value() == "sk-env"
    assert "sk-env" not in repr(llm)
    given = ChatVLLM(base_url="http://127.0.0.1:8/v1", api_key="sk-given", timeout=5)
    assert given.base_url == "http://127.0.0.1:8/v1" and given.request_timeout == 5
    assert given.api_key is not None and given.api_key.get_secret_value() == "sk-given"
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    bare = ChatVLLM()
    assert bare.api_key is None and bare.base_url == "http://localhost:8000/v1"


def test_langsmith_params_name_provider_model_and_settings():
    llm = ChatVLLM(model="m", temperature=0.3, max_tokens=99, stop=["END"])
    assert llm._get_ls_params() == {
        "ls_provider": "vllm",
        "ls_model_name": "m",
        "ls_model_type": "chat",
        "ls_temperature": 0.3,
        "ls_max_tokens": 99,
        "ls_stop": ["END"],
    }
    assert llm._get_ls_params(stop=["X"], model="other", temperature=0.0)["ls_stop"] == ["X"]
    assert llm._get_ls_params(model="other")["ls_model_name"] == "other"
    assert "ls_temperature" not in ChatVLLM(temperature=None)._get_ls_params()


async def _sse_server(aiohttp_events: list[bytes], *, cut: bool = False) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        for e in aiohttp_events:
            await out.write(e)
        if cut:
            request.transport.close()  # type: ignore[union-attr]
            return out
        await out.write_eof()
        return out

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/v1"


CHUNK = b'data: {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'


@pytest.mark.parametrize(
    ("error", "raised", "match"),
    [
        (
            b'data: {"object": "error", "message": "bad input", "code": 400}\n\n',
            ModelRequestError,
            "bad input",
        ),
        (
            b'data: {"error": {"message": "engine died", "code": 500}}\n\n',
            ModelUnavailableError,
            "engine died",
        ),
    ],
)
async def test_an_error_event_in_the_stream_raises_what_it_says(error, raised, match):
    runner, base = await _sse_server([CHUNK, error])
    llm = llm_for(base)
    got = []
    with pytest.raises(raised, match=match):
        async for c in llm.astream("q"):
            got.append(c.content)
    await llm.aclose()
    await runner.cleanup()
    assert got == ["Hi"]  # what came before the error was passed on


async def test_a_stream_that_breaks_off_is_unavailable_and_multiline_data_is_joined():
    runner, base = await _sse_server(
        [CHUNK, b'data: {"id": "c1", "choices": [{"index": 0,\ndata: "delta": {}}]}\n\n']
    )
    llm = llm_for(base)
    chunks = [c async for c in llm.astream("q")]  # no [DONE]: the stream ends with the connection
    await llm.aclose()
    await runner.cleanup()
    assert "".join(c.content for c in chunks) == "Hi" and chunks[-1].chunk_position == "last"

    runner, base = await _sse_server([CHUNK, b'data: {"id": "c1", "choi'], cut=True)
    llm = llm_for(base, max_retries=0)
    with pytest.raises(ModelUnavailableError, match="broke off"):
        [c async for c in llm.astream("q")]
    await llm.aclose()
    await runner.cleanup()


async def test_a_stream_that_never_opens_is_retried_then_unavailable(serve):
    from langgraph_wideseek.testing import Reply

    srv = await serve(lambda req: Reply(status=503, error="overloaded"))
    llm = llm_for(srv, max_retries=1)
    with pytest.raises(ModelUnavailableError, match="after 2 attempts"):
        [c async for c in llm.astream("q")]
    await llm.aclose()
    assert len(srv.requests) == 2
