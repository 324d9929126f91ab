"""ChatVLLM against vLLM 0.29's own OpenAI server (hermes tool parser, qwen3 reasoning parser): what reaches
the AIMessage is what the server sent and what the engine generated.

The engine is scripted (real token ids from the tiny Qwen3-style tokenizer); every expectation about ids and
logprobs is checked against the engine's own record of the call, not against constants."""

from __future__ import annotations

import json

import pytest
from conformance.conftest import HAVE_VLLM, MAX_MODEL_LEN
from conformance.test_vllm_endpoint_parity import ACCESS, SEARCH, call, f32_logprob
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langgraph_wideseek.llm import ChatVLLM, ContextOverflowError
from training.endpoint import ChatEndpoint
from training.engine import SamplingParamsLite
from training.testing import ScriptedEngine, model_text

pytestmark = pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed (the conformance tier: make test-vllm)")

MESSAGES = [SystemMessage("You are a subagent."), HumanMessage("Find the founding year.")]


def scripted(served, tok, *texts: str) -> ScriptedEngine:
    """An engine answering ``texts`` in turn (the last one again once they run out)."""
    replies = list(texts)

    def script(prompt: str) -> str:
        return replies.pop(0) if len(replies) > 1 else replies[0]

    engine = ScriptedEngine(tok, script, logprob=f32_logprob)
    served.engine = engine
    return engine


def llm_for(served, **kw) -> ChatVLLM:
    return ChatVLLM(base_url=served.base_url, model=served.model_name, max_retries=0, **kw)


async def run(llm: ChatVLLM, messages, **kw):
    try:
        return await llm.ainvoke(messages, **kw)
    finally:
        await llm.aclose()


async def test_tool_call_reasoning_token_ids_and_logprobs(served, tok):
    raw = model_text("Let me look.", reasoning="I should search first.",
                     tool_calls=[("search", {"queries": [{"query": "founding year", "count": 3}]})])
    engine = scripted(served, tok, raw)
    ai = await run(llm_for(served).bind_tools([SEARCH, ACCESS]), MESSAGES, max_tokens=300)
    md = ai.response_metadata
    (tc,) = ai.tool_calls
    assert tc["name"] == "search" and tc["args"] == {"queries": [{"query": "founding year", "count": 3}]}
    assert tc["id"].startswith("chatcmpl-tool-") and ai.additional_kwargs["tool_calls"][0]["id"] == tc["id"]
    assert ai.invalid_tool_calls == []
    # vLLM's parsers keep the text verbatim
    assert ai.additional_kwargs["reasoning_content"] == "\nI should search first.\n"
    assert ai.content == "\n\nLet me look.\n"
    assert md["finish_reason"] == "tool_calls" and md["model_name"] == served.model_name
    # ids and logprobs: exactly the engine's
    prompt_ids, params = engine.calls[0]
    want = tok(raw, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    assert md["prompt_token_ids"] == prompt_ids
    assert md["token_ids"] == want
    assert md["logprobs"] == [max(f32_logprob(i, t), -9999.0) for i, t in enumerate(want)]
    assert ai.usage_metadata == {"input_tokens": len(prompt_ids), "output_tokens": len(want),
                                 "total_tokens": len(prompt_ids) + len(want)}
    # what ChatVLLM asked for reached the engine
    assert params.max_tokens == 300 and params.logprobs == 0


async def test_final_answer_and_length_finish(served, tok):
    engine = scripted(served, tok, model_text("The answer is 1999.", reasoning="Found it."))
    ai = await run(llm_for(served).bind_tools([SEARCH]), MESSAGES)
    assert ai.content == "\n\nThe answer is 1999." and ai.tool_calls == []
    assert ai.response_metadata["finish_reason"] == "stop"
    ai = await run(llm_for(served), MESSAGES, max_tokens=6)
    assert ai.response_metadata["finish_reason"] == "length" and len(ai.response_metadata["token_ids"]) == 6
    assert ai.content == "" and ai.additional_kwargs["reasoning_content"]  # still thinking when cut
    assert engine.calls[-1][1].max_tokens == 6


async def test_malformed_call_comes_back_as_content_and_the_client_reports_it(served, tok):
    scripted(served, tok, '<think>\nx\n</think>\n\n<tool_call>\n{"name": "search", "arguments": {"q": [}\n</tool_call>')
    ai = await run(llm_for(served).bind_tools([SEARCH]), MESSAGES)
    assert ai.response_metadata["finish_reason"] == "stop" and ai.tool_calls == []
    (bad,) = ai.invalid_tool_calls
    assert "not valid JSON" in bad["error"] and ai.content == ""


async def test_no_think_block_is_all_reasoning(served, tok):
    """A model that skips its think block: vLLM's qwen3 parser files everything under reasoning; ChatVLLM keeps
    that as it is (the graph then sees an empty reply, as it would in production)."""
    scripted(served, tok, "Plain answer without thinking.")
    ai = await run(llm_for(served), MESSAGES)
    assert ai.content == "" and ai.additional_kwargs["reasoning_content"] == "Plain answer without thinking."


async def test_prompt_longer_than_the_context_is_a_context_overflow(served, tok):
    engine = scripted(served, tok, "never")
    with pytest.raises(ContextOverflowError, match="maximum context length"):
        await run(llm_for(served), [HumanMessage("word " * (2 * MAX_MODEL_LEN))])
    assert engine.calls == []


def prompt_len(tok, messages, tools=None) -> int:
    from langgraph_wideseek.llm import message_to_openai

    wire = [message_to_openai(m) for m in messages]
    text = tok.apply_chat_template(wire, tools=tools, add_generation_prompt=True, tokenize=False)
    return len(tok(text, add_special_tokens=False)["input_ids"])


async def test_max_tokens_past_the_room_left_gets_the_room_left(served, tok):
    """The graph asks for the context it estimates is left; vLLM refuses prompt + max_tokens > max_model_len
    where the in-actor endpoint clamps. ChatVLLM retries once without max_tokens, so vLLM generates into the
    room that is really left (never more than was asked), as training does."""
    engine = scripted(served, tok, model_text("Short answer.", reasoning="ok"))
    n = prompt_len(tok, MESSAGES, [SEARCH])
    ai = await run(llm_for(served).bind_tools([SEARCH]), MESSAGES, max_tokens=MAX_MODEL_LEN - n + 100)
    assert ai.response_metadata["finish_reason"] == "stop" and ai.content == "\n\nShort answer."
    (_, params), = engine.calls
    assert params.max_tokens == MAX_MODEL_LEN - n  # vLLM's own default: the room left


async def test_prompt_filling_the_context_is_a_context_overflow(served, tok):
    engine = scripted(served, tok, "never")
    base = prompt_len(tok, [HumanMessage("")])
    content = ""
    while prompt_len(tok, [HumanMessage(content + "a" * 50)]) <= MAX_MODEL_LEN:
        content += "a" * 50
    while prompt_len(tok, [HumanMessage(content + "b ")]) <= MAX_MODEL_LEN:
        content += "b "
    if prompt_len(tok, [HumanMessage(content)]) != MAX_MODEL_LEN:
        pytest.skip(f"could not build a prompt of exactly {MAX_MODEL_LEN} tokens (frame {base})")
    with pytest.raises(ContextOverflowError):
        await run(llm_for(served), [HumanMessage(content)])
    assert engine.calls == []


async def test_a_multi_turn_history_renders_the_same_prompt_on_vllm_and_the_endpoint(served, tok):
    """Turn 2 as the graph sends it: turn 1's AIMessage (reasoning, tool call with vLLM's id) and the tool
    result. vLLM and the in-actor endpoint must build the same prompt ids from it."""
    first = model_text("Let me look.", reasoning="Search first.", tool_calls=[("search", {"queries": [1]})])
    engine = scripted(served, tok, first, model_text("It was 1999.", reasoning="Got it."))
    llm = llm_for(served).bind_tools([SEARCH])
    ai1 = await run(llm, MESSAGES)
    history = MESSAGES + [ai1, ToolMessage("Founded in 1999.", tool_call_id=ai1.tool_calls[0]["id"])]
    ai2 = await run(llm, history)
    assert ai2.content == "\n\nIt was 1999." and ai2.response_metadata["finish_reason"] == "stop"
    vllm_prompt = engine.calls[1][0]
    assert ai2.response_metadata["prompt_token_ids"] == vllm_prompt
    assert tok.decode(vllm_prompt).count('<tool_call>\n{"name": "search"') == 1

    ep_engine = ScriptedEngine(tok, lambda p: "x", logprob=f32_logprob)
    ep = ChatEndpoint(tok, engine=ep_engine, sampling_params=SamplingParamsLite(max_tokens=None),
                      max_length=MAX_MODEL_LEN, model_name=served.model_name)
    url = await ep.start()
    try:
        await run(ChatVLLM(base_url=url, model=served.model_name, max_retries=0).bind_tools([SEARCH]), history)
    finally:
        await ep.aclose()
    assert ep_engine.calls[0][0] == vllm_prompt


async def test_without_ids_and_logprobs(served, tok):
    scripted(served, tok, model_text("x", reasoning="r"))
    ai = await run(llm_for(served, return_token_ids=False, logprobs=False), MESSAGES)
    md = ai.response_metadata
    assert md["prompt_token_ids"] is None and md["token_ids"] is None and md["logprobs"] is None


def test_sync_invoke(served, tok):
    scripted(served, tok, model_text("sync", reasoning="r") + "\n" + call("search", {"queries": []}))
    ai = ChatVLLM(base_url=served.base_url, model=served.model_name, max_retries=0).bind_tools([SEARCH]).invoke(
        MESSAGES)
    assert isinstance(ai, AIMessage) and ai.tool_calls[0]["args"] == {"queries": []}
    assert json.loads(ai.additional_kwargs["tool_calls"][0]["function"]["arguments"]) == {"queries": []}
