"""The in-actor endpoint answers what vLLM 0.29's own OpenAI server answers, field for field, for the same
engine outputs.

Each case scripts the raw text a Qwen3 model writes; one :class:`ScriptedEngine` (real token ids from the tiny
Qwen3-style tokenizer) serves both vLLM's API server (``--enable-auto-tool-choice --tool-call-parser hermes
--reasoning-parser qwen3``, over a scripted engine core) and ``training.endpoint.ChatEndpoint``. The two JSON
bodies must be equal except for values that are random or server-specific by nature: response and tool-call
ids (only their form is checked), ``created`` and ``system_fingerprint``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import numpy as np
import pytest
from conformance.conftest import HAVE_VLLM, MAX_MODEL_LEN

from training.endpoint import ChatEndpoint
from training.engine import SamplingParamsLite
from training.testing import ScriptedEngine, default_logprob, model_text

pytestmark = pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed (the conformance tier: make test-vllm)")

SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Search the web.",
    "parameters": {"type": "object", "properties": {"queries": {"type": "array", "items": {"type": "object"}}},
                   "required": ["queries"]}}}
ACCESS = {"type": "function", "function": {
    "name": "access", "description": "Read pages.",
    "parameters": {"type": "object", "properties": {"urls": {"type": "array"}}, "required": ["urls"]}}}
TOOLS = {"tools": [SEARCH, ACCESS]}
USER = [{"role": "system", "content": "You are a subagent."}, {"role": "user", "content": "Find the founding year."}]


def f32_logprob(position: int, token_id: int) -> float:
    """The scripted logprobs, rounded to float32 as a GPU sampler's are (vLLM sends float32 values); every
    seventh is -inf, which vLLM reports as -9999.0."""
    if position % 7 == 5:
        return float("-inf")
    return float(np.float32(default_logprob(position, token_id)))


def call(name: str, args: Any) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


# name -> (raw model text, request fields beyond model/messages/return_token_ids/logprobs)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "reasoning, content and a tool call": (
        model_text("Let me look.", reasoning="I should search first.",
                   tool_calls=[("search", {"queries": [{"query": "founding year", "count": 3}]})]), TOOLS),
    "two tool calls, no content": (
        model_text("", reasoning="Both.", tool_calls=[("search", {"queries": [1]}), ("access", {"urls": [2]})]),
        TOOLS),
    "final answer with tools bound": (model_text("The answer is 1999.", reasoning="Found it."), TOOLS),
    "final answer without tools": (model_text("The answer is 1999.", reasoning="Found it."), {}),
    "no think block at all: all reasoning": ("Just text, no thinking.", TOOLS),
    "dangling </think> (template opened it)": ("I think so.\n</think>\n\nAnswer: 5", TOOLS),
    "empty think block": ("<think>\n\n</think>\n\nHi", TOOLS),
    "bare </think>": ("</think>Hi", TOOLS),
    "a second </think> is dropped": ("<think>a</think>b</think>c", TOOLS),
    "thinking cut by max_tokens": ("<think>\nstill thinking about it and more", {**TOOLS, "max_tokens": 5}),
    "tool call inside the reasoning ends it": ("<think>\nr\n" + call("search", {"queries": [1]}), TOOLS),
    "malformed tool call stays content": (
        '<think>\nx\n</think>\n\n<tool_call>\n{"name": "search", "arguments": {"queries": [}\n</tool_call>', TOOLS),
    "unterminated valid tool call": (
        '<think>r</think>\n<tool_call>\n{"name": "search", "arguments": {"queries": [1]}}', TOOLS),
    "unterminated tool call cut by max_tokens": (
        '<think>\nr\n</think>\n\n<tool_call>\n{"name": "search", "arguments": {"q', {**TOOLS, "max_tokens": 20}),
    "double-encoded arguments": (
        '<think>r</think>\n' + call("search", json.dumps({"queries": [1]})), TOOLS),
    "call without arguments": ('<think>r</think>\n<tool_call>\n{"name": "search"}\n</tool_call>', TOOLS),
    "call with a non-string name": ('<think>r</think>\n<tool_call>\n{"name": 5, "arguments": {}}\n</tool_call>', TOOLS),
    "closing tag inside a JSON string": ('<think>r</think>\n' + call("search", {"q": "</tool_call>"}), TOOLS),
    "text after the call is dropped": ('<think>r</think>\nbefore\n' + call("search", {}) + "\nafter", TOOLS),
    "blank content before a call": ('<think>r</think>\n  \n' + call("search", {}), TOOLS),
    "complete call then max_tokens": ('<think>r</think>\n' + call("search", {}) + "\nmore text here", {
        **TOOLS, "max_tokens": 24}),
    "tool_choice none": (model_text("", reasoning="r", tool_calls=[("search", {"queries": [1]})]),
                         {**TOOLS, "tool_choice": "none"}),
    "call text without tools": (model_text("", reasoning="r", tool_calls=[("search", {"queries": [1]})]), {}),
    "thinking switched off": ("Hello there.", {"chat_template_kwargs": {"enable_thinking": False}}),
    "thinking off with a call": (call("search", {}), {**TOOLS, "chat_template_kwargs": {"enable_thinking": False}}),
    "stop string": (model_text("alpha STOP beta", reasoning="r"), {"stop": ["STOP"]}),
    "no logprobs, no token ids": (model_text("x", reasoning="r"), {"logprobs": False, "return_token_ids": False}),
    "multi-byte characters": (model_text("搜索结果显示，这家公司成立于一九九九年", reasoning="好的"), {}),
    "max_tokens 0": ("x", {"max_tokens": 0}),
    "max_tokens and max_completion_tokens": (model_text("abc " * 20, reasoning="r"), {
        "max_completion_tokens": 9, "max_tokens": 50}),
}

HISTORY = USER + [
    {"role": "assistant", "content": "Let me look.", "reasoning_content": "I should search.",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "search", "arguments": '{"queries": [{"query": "year"}]}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Founded in 1999."},
    {"role": "assistant", "content": "", "reasoning": "Two pages.",
     "tool_calls": [{"id": "call_2", "type": "function", "function": {"name": "access", "arguments": '{"urls": [1]}'}},
                    {"id": "call_3", "type": "function", "function": {"name": "access", "arguments": '{"urls": [2]}'}}]},
    {"role": "tool", "tool_call_id": "call_2", "content": "Page one."},
    {"role": "tool", "tool_call_id": "call_3", "content": [{"type": "text", "text": "Page "}, {"type": "text", "text": "two."}]},
]


async def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url + "/chat/completions", json=body) as r:
        return r.status, await r.json()


def normalized(body: dict[str, Any]) -> dict[str, Any]:
    """The body with random or server-specific values replaced by their form."""
    body = json.loads(json.dumps(body))
    if "id" in body:
        assert re.fullmatch(r"chatcmpl-[0-9a-f]+", body["id"]), body["id"]
        body["id"] = "chatcmpl-*"
    if "created" in body:
        assert isinstance(body["created"], int)
        body["created"] = 0
    if "system_fingerprint" in body:
        assert isinstance(body["system_fingerprint"], str)
        body["system_fingerprint"] = "*"
    for choice in body.get("choices", []):
        for c in choice["message"].get("tool_calls") or []:
            assert re.fullmatch(r"chatcmpl-tool-[0-9a-f]{16}", c["id"]), c["id"]
            c["id"] = "chatcmpl-tool-*"
    return body


async def both(served, tok, raw: str, fields: dict[str, Any], *, strict: bool = True,
               messages: list[dict[str, Any]] | None = None) -> tuple[tuple[int, dict], tuple[int, dict], Any]:
    """The same request to vLLM's server and to the endpoint, one scripted engine behind both."""
    engine = ScriptedEngine(tok, lambda prompt: raw, logprob=f32_logprob)
    served.engine = engine
    body = {"model": served.model_name, "messages": messages or USER, "return_token_ids": True, "logprobs": True,
            **fields}
    from_vllm = await post(served.base_url, body)
    # OpenRLHF's sampling params for an agent executor (max_tokens unset: the request decides)
    base = SamplingParamsLite(temperature=1.0, top_p=1.0, top_k=-1, max_tokens=None, min_tokens=1,
                              skip_special_tokens=False, logprobs=None)
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base, max_length=served.max_model_len,
                      model_name=served.model_name, strict_max_tokens=strict)
    url = await ep.start()
    try:
        from_endpoint = await post(url, body)
    finally:
        await ep.aclose()
    return from_vllm, from_endpoint, engine


def flat(obj: Any, path: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in flat(val, f"{path}.{key}").items()} or {path: {}}
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        return {k: v for i, val in enumerate(obj) for k, v in flat(val, f"{path}[{i}]").items()}
    return {path: obj}


def assert_same(from_vllm, from_endpoint) -> None:
    (sv, bv), (se, be) = from_vllm, from_endpoint
    fv, fe = flat(normalized(bv)), flat(normalized(be))
    diff = {k: (fv.get(k, "<absent>"), fe.get(k, "<absent>")) for k in fv.keys() | fe.keys()
            if fv.get(k, "<absent>") != fe.get(k, "<absent>")}
    assert (se, diff) == (sv, {}), "fields that differ, as (vLLM, endpoint)"


@pytest.mark.parametrize("case", list(CASES))
async def test_same_response_as_vllm(served, tok, case):
    raw, fields = CASES[case]
    from_vllm, from_endpoint, engine = await both(served, tok, raw, fields)
    assert_same(from_vllm, from_endpoint)
    if from_vllm[0] == 200:
        assert len(engine.calls) == 2  # one generation each: both answered from the same engine output


async def test_history_with_reasoning_tool_calls_and_results_renders_to_the_same_prompt(served, tok):
    (sv, bv), (se, be), engine = await both(served, tok, model_text("Done.", reasoning="ok"), TOOLS,
                                            messages=HISTORY)
    assert sv == 200 and se == 200
    assert be["prompt_token_ids"] == bv["prompt_token_ids"]
    (vllm_prompt, _), (ep_prompt, _) = engine.calls
    assert vllm_prompt == ep_prompt == bv["prompt_token_ids"]
    assert_same((sv, bv), (se, be))


@pytest.mark.parametrize("strict", [True, False])
async def test_prompt_longer_than_the_context_is_the_same_400(served, tok, strict):
    long = [{"role": "user", "content": "word " * (2 * MAX_MODEL_LEN)}]
    from_vllm, from_endpoint, engine = await both(served, tok, "x", {}, messages=long, strict=strict)
    assert from_vllm[0] == 400 and "maximum context length" in from_vllm[1]["error"]["message"]
    assert_same(from_vllm, from_endpoint)
    assert engine.calls == []


async def test_max_tokens_past_the_room_left_is_the_same_400_in_strict_mode(served, tok):
    from_vllm, from_endpoint, _ = await both(served, tok, "x", {"max_tokens": MAX_MODEL_LEN - 10})
    assert from_vllm[0] == 400
    assert_same(from_vllm, from_endpoint)
    from_vllm, from_endpoint, _ = await both(served, tok, "x", {"max_completion_tokens": MAX_MODEL_LEN + 1})
    assert from_vllm[0] == 400 and from_vllm[1]["error"]["param"] == "max_completion_tokens"
    assert_same(from_vllm, from_endpoint)


async def test_default_mode_clamps_max_tokens_where_vllm_refuses(served, tok):
    """The endpoint's one deliberate difference (documented): without strict_max_tokens a max_tokens past the
    room left is a cap, not an error, so a graph's estimated budget never fails a training rollout."""
    (sv, _), (se, be), _ = await both(served, tok, model_text("x", reasoning="r"), {"max_tokens": MAX_MODEL_LEN},
                                       strict=False)
    assert sv == 400 and se == 200 and be["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("margin", [0, 1])
async def test_prompt_at_the_context_length(served, tok, margin):
    """A prompt of exactly the context length (or one less) without max_tokens."""
    empty = tok.apply_chat_template([{"role": "user", "content": ""}], add_generation_prompt=True, tokenize=False)
    n_frame = len(tok(empty, add_special_tokens=False)["input_ids"])
    text = "a" * 40
    per = len(tok("a" * 40, add_special_tokens=False)["input_ids"])
    # grow the message until the prompt has the wanted length
    content, want = "", MAX_MODEL_LEN - margin
    while n_frame + len(tok(content + text, add_special_tokens=False)["input_ids"]) <= want:
        content += text
    while len(tok(content, add_special_tokens=False)["input_ids"]) + n_frame < want:
        content += "b "
    prompt = tok.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                     tokenize=False)
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    if n != want:
        pytest.skip(f"could not build a prompt of exactly {want} tokens ({n}, {per} per chunk)")
    from_vllm, from_endpoint, _ = await both(served, tok, "Hi", {}, messages=[{"role": "user", "content": content}])
    assert_same(from_vllm, from_endpoint)
