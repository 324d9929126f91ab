"""ChatVLLM streaming: real chunks over SSE whose merged message equals the whole reply, extras included.

The simulated server streams as vLLM does (``prompt_token_ids`` on the first chunk, ``token_ids`` and
``logprobs`` on every chunk, usage last), so a merged stream must carry exactly what ``ainvoke`` returns for
the same reply: content, reasoning, tool calls, token ids, logprobs, finish reason and usage.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from langgraph_wideseek.errors import ContextOverflowError, ModelRequestError
from langgraph_wideseek.model import ChatVLLM, message_to_openai
from langgraph_wideseek.testing import FakeOpenAIServer, Reply

from .test_llm import llm_for

CALL = {"name": "search", "arguments": {"query": ["a b", "c"], "topk": 3}}
REPLIES = {
    "text": Reply(content="The answer is 42, with some words to stream."),
    "reasoning": Reply(reasoning="Let me think step by step.", content="Forty-two."),
    "tool_calls": Reply(reasoning="I search.", tool_calls=[CALL, {**CALL, "arguments": {"query": ["d"]}}]),
    "hermes": Reply(reasoning="Thinking <here>.", content="Before.", tool_calls=[CALL], hermes_text=True),
    "hermes_text_only": Reply(reasoning="Hmm.", content="Plain answer < 3 > 1.", hermes_text=True),
    "hermes_malformed": Reply(tool_calls=[{"name": "search", "arguments": "{not json"}], hermes_text=True),
    "length": Reply(content="word " * 50, finish_reason=None),
}


@pytest.fixture
def serve_threaded():
    """``srv = serve_threaded(policy)``: a FakeOpenAIServer on its own thread, for synchronous callers."""
    started = []

    def start(policy: Any) -> Any:
        started.append(FakeOpenAIServer(policy).start_in_thread())
        return started[-1]

    yield start
    for srv in started:
        srv.stop()


def comparable(m: AIMessage) -> dict[str, Any]:
    """What a reply carries, without the per-request tool-call ids."""
    md = m.response_metadata
    return {
        "content": m.content,
        "reasoning": m.additional_kwargs.get("reasoning_content"),
        "tool_calls": [(c["name"], c["args"]) for c in m.tool_calls],
        "invalid": [c["name"] for c in m.invalid_tool_calls],
        # what goes back to the model, invalid calls included (call ids are made up per request)
        "wire": re.sub(r'"(call_|chatcmpl-tool-)\w+"', "ID", json.dumps(message_to_openai(m))),
        "raw_calls": [
            (c["function"]["name"], c["function"]["arguments"])
            for c in m.additional_kwargs.get("tool_calls") or []
        ],
        **{
            k: md.get(k) for k in ("finish_reason", "model_name", "prompt_token_ids", "token_ids", "logprobs")
        },
        "usage": m.usage_metadata,
    }


@pytest.mark.parametrize("name", sorted(REPLIES))
async def test_merged_stream_equals_the_whole_reply(serve, name):
    srv = await serve(lambda req: REPLIES[name])
    llm = llm_for(srv, max_tokens=20 if name == "length" else None)
    whole = await llm.ainvoke([HumanMessage("q")])
    chunks = [c async for c in llm.astream([HumanMessage("q")])]
    await llm.aclose()

    assert srv.requests[1]["stream"] is True and srv.requests[1]["stream_options"] == {"include_usage": True}
    assert len(chunks) > 3  # really streamed, not one chunk
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert chunks[-1].chunk_position == "last"
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert comparable(merged) == comparable(whole)
    assert merged.response_metadata["token_ids"]  # the extras were really there to compare
    assert len(merged.response_metadata["logprobs"]) == len(merged.response_metadata["token_ids"])


async def test_content_streams_before_the_reply_ends_and_tags_are_held_back(serve):
    srv = await serve(lambda req: REPLIES["hermes"])
    llm = llm_for(srv)
    texts = [c.content async for c in llm.astream("q")]
    await llm.aclose()
    # a server without parsers: the reasoning tags come first, so everything is read at the end, as a whole
    assert "".join(texts) == "Before."
    assert not any("<think>" in t or "<tool_call>" in t for t in texts)

    srv2 = await serve(lambda req: REPLIES["text"])
    llm2 = llm_for(srv2)
    texts = [c.content async for c in llm2.astream("q")]
    await llm2.aclose()
    assert len([t for t in texts if t]) > 5  # word by word


async def test_invoke_streams_when_asked_and_callbacks_see_every_token(serve):
    srv = await serve(lambda req: REPLIES["reasoning"])

    class Tokens(AsyncCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        async def on_llm_new_token(self, token: str, **kw: Any) -> None:
            self.tokens.append(token)

    seen = Tokens()
    llm = llm_for(srv, streaming=True)
    ai = await llm.ainvoke("q", config={"callbacks": [seen]})
    await llm.aclose()
    assert srv.requests[0]["stream"] is True
    assert isinstance(ai, AIMessage) and ai.content == "Forty-two."
    assert ai.additional_kwargs["reasoning_content"] == "Let me think step by step."
    assert "".join(seen.tokens) == "Forty-two."
    assert ai.response_metadata["token_ids"] and ai.response_metadata["finish_reason"] == "stop"


def test_sync_stream_and_invoke_outside_and_inside_a_loop(serve_threaded):
    srv = serve_threaded(lambda req: REPLIES["tool_calls"])
    llm = ChatVLLM(base_url=srv.base_url, model="fake-model")

    class Tokens(BaseCallbackHandler):
        n = 0

        def on_llm_new_token(self, token: str, **kw: Any) -> None:
            Tokens.n += 1

    chunks = list(llm.stream("q", config={"callbacks": [Tokens()]}))
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert [c["args"] for c in merged.tool_calls] == [CALL["arguments"], {"query": ["d"]}]
    assert Tokens.n == len(chunks)
    # stopping early leaves nothing behind that breaks the next call
    first = next(iter(llm.stream("q")))
    assert isinstance(first, AIMessageChunk)
    assert llm.invoke("q").tool_calls


async def test_stream_errors_before_and_during_the_stream(serve):
    srv = await serve(lambda req: Reply(status=400, error="bad request for this model"))
    llm = llm_for(srv)
    with pytest.raises(ModelRequestError, match="bad request"):
        [c async for c in llm.astream("q")]
    await llm.aclose()

    # vLLM's refusal of max_tokens past the context: asked again without it, as for a whole reply
    def clamped(req: dict[str, Any]) -> Reply:
        if req.get("max_tokens"):
            why = "However, you requested 1000 output tokens and your prompt contains 21 input tokens"
            return Reply(status=400, error=f"This model's maximum context length is 60 tokens. {why}")
        return Reply(content="short answer")

    big = await serve(clamped)
    llm = llm_for(big, max_tokens=1000)
    text = "".join([c.content async for c in llm.astream("q")])
    await llm.aclose()
    assert text == "short answer" and "max_tokens" not in big.requests[-1]
    assert len(big.requests) == 2

    full = await serve(lambda req: Reply(content="x"), max_context=5)
    llm = llm_for(full)
    with pytest.raises(ContextOverflowError):
        [c async for c in llm.astream("a long question that does not fit in five toy tokens")]
    await llm.aclose()


async def test_extras_another_server_rejects_are_dropped_for_streams_too(serve):
    def picky(req: dict[str, Any]) -> Reply:
        if "return_token_ids" in req:
            return Reply(status=400, error="Unrecognized request argument supplied: return_token_ids")
        return Reply(content="fine")

    srv = await serve(picky)
    llm = llm_for(srv)
    chunks = [c async for c in llm.astream("q")]
    await llm.aclose()
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.content == "fine"
    assert merged.response_metadata["token_ids"] is None and merged.response_metadata["logprobs"]
