"""The in-actor OpenAI-compatible endpoint, against a real HF tokenizer with our Qwen3-style chat template and
an engine stand-in that returns scripted token ids (so reasoning and tool calls go through the real parser)."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from transformers import AutoTokenizer

from langgraph_wideseek.llm import ChatVLLM, ContextOverflowError
from training.endpoint import ChatEndpoint
from training.engine import SamplingParamsLite
from training.testing import ScriptedEngine, model_text

ASSETS = Path(__file__).parent / "assets"

SEARCH_TOOL = {"type": "function", "function": {
    "name": "search", "description": "Search the web.",
    "parameters": {"type": "object", "properties": {"queries": {"type": "array", "items": {"type": "object"}}},
                   "required": ["queries"]}}}
ACCESS_TOOL = {"type": "function", "function": {
    "name": "access", "description": "Read pages.",
    "parameters": {"type": "object", "properties": {"urls": {"type": "array"}}, "required": ["urls"]}}}


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(str(ASSETS / "tiny-qwen3"))


def base_params(**kw) -> SamplingParamsLite:
    # What OpenRLHF 0.11.2's SamplesGenerator builds for an agent executor.
    return SamplingParamsLite(**{"temperature": 1.0, "top_p": 1.0, "top_k": -1, "max_tokens": None,
                                 "min_tokens": 1, "skip_special_tokens": False, "logprobs": None, **kw})


async def post(url: str, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/chat/completions", json=body) as r:
            return r.status, await r.json()


def chat(messages, **kw) -> dict:
    return {"model": "policy", "messages": messages, "return_token_ids": True, "logprobs": True, **kw}


USER = [{"role": "system", "content": "You are a subagent."}, {"role": "user", "content": "Find the founding year."}]


async def test_tool_call_and_reasoning_go_through_the_real_parser(tok):
    raw = model_text("Let me look.", reasoning="I should search first.",
                     tool_calls=[("search", {"queries": [{"query": "company founding year", "count": 3}]})])
    engine = ScriptedEngine(tok, lambda prompt: raw)
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=4096)
    url = await ep.start()
    try:
        status, body = await post(url, chat(USER, tools=[SEARCH_TOOL, ACCESS_TOOL]))
    finally:
        await ep.aclose()
    assert status == 200, body
    choice = body["choices"][0]
    msg = choice["message"]
    # vLLM's qwen3 and hermes parsers (tests/conformance holds the endpoint to them): verbatim text
    assert msg["reasoning"] == "\nI should search first.\n" and "reasoning_content" not in msg
    assert msg["content"] == "\n\nLet me look.\n"
    assert choice["finish_reason"] == "tool_calls"
    (call,) = msg["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "search"
    assert json.loads(call["function"]["arguments"]) == {"queries": [{"query": "company founding year", "count": 3}]}

    # the prompt ids are exactly the chat template with tools, tokenized
    expected_prompt = tok.apply_chat_template(USER, tools=[SEARCH_TOOL, ACCESS_TOOL], add_generation_prompt=True,
                                              tokenize=False)
    assert body["prompt_token_ids"] == tok(expected_prompt, add_special_tokens=False)["input_ids"]
    assert engine.calls[0][0] == body["prompt_token_ids"]
    # completion ids are the engine's, ending in the end-of-turn token; logprobs line up one per id
    ids = choice["token_ids"]
    assert ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.decode(ids[:-1]) == raw
    lps = [c["logprob"] for c in choice["logprobs"]["content"]]
    assert len(lps) == len(ids) and all(lp < 0 for lp in lps)
    assert len(set(lps)) > 3
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        len(body["prompt_token_ids"]), len(ids), len(body["prompt_token_ids"]) + len(ids))


async def test_final_answer_without_tools_and_dangling_think(tok):
    # Qwen3 started with the think tag in the prompt: only the closing tag reaches the output
    engine = ScriptedEngine(tok, lambda p: "short reasoning\n</think>\n\n| A | B |\n|---|---|\n| 1 | 2 |")
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=4096)
    url = await ep.start()
    try:
        status, body = await post(url, chat(USER))
    finally:
        await ep.aclose()
    msg = body["choices"][0]["message"]
    assert status == 200 and body["choices"][0]["finish_reason"] == "stop"
    assert msg["reasoning"] == "short reasoning\n"
    assert msg["content"].startswith("\n\n| A | B |") and "tool_calls" not in msg  # vLLM omits an empty list


async def test_malformed_tool_call_stays_content_like_vllm_and_the_client_reports_it(tok):
    raw = 'Calling.\n<tool_call>\n{"name": "search", "arguments": {"queries": [}\n</tool_call>'
    ep = ChatEndpoint(tok, engine=ScriptedEngine(tok, lambda p: raw), sampling_params=base_params(),
                      max_length=4096)
    url = await ep.start()
    try:
        status, body = await post(url, chat(USER, tools=[SEARCH_TOOL]))
        llm = ChatVLLM(base_url=url, model="policy", max_retries=0)
        ai = await llm.bind_tools([SEARCH_TOOL]).ainvoke([("system", "s"), ("human", "q")])
        await llm.aclose()
    finally:
        await ep.aclose()
    msg = body["choices"][0]["message"]
    # no </think>: the call ends vLLM's reasoning and, malformed, stays content
    assert msg["reasoning"] == "Calling.\n" and "tool_calls" not in msg and msg["content"].startswith("<tool_call>")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert ai.tool_calls == [] and len(ai.invalid_tool_calls) == 1
    assert "not valid JSON" in ai.invalid_tool_calls[0]["error"]


async def test_sampling_fields_reach_the_engine_and_base_fields_are_kept(tok):
    engine = ScriptedEngine(tok, lambda p: "ok")
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=4096)
    url = await ep.start()
    try:
        status, _ = await post(url, chat(USER, max_tokens=50, temperature=0.6, top_p=0.9, top_k=20, seed=7,
                                         repetition_penalty=1.1))
    finally:
        await ep.aclose()
    assert status == 200
    sp = engine.calls[0][1]
    assert isinstance(sp, SamplingParamsLite)
    assert (sp.max_tokens, sp.temperature, sp.top_p, sp.top_k, sp.seed, sp.repetition_penalty) == (
        50, 0.6, 0.9, 20, 7, 1.1)
    assert sp.min_tokens == 1 and sp.skip_special_tokens is False  # from OpenRLHF's params
    assert sp.logprobs == 1  # always asked: rows carry rollout logprobs


async def test_max_tokens_truncates_with_finish_length(tok):
    engine = ScriptedEngine(tok, lambda p: "word " * 200)
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=4096)
    url = await ep.start()
    try:
        status, body = await post(url, chat(USER, max_tokens=7))
    finally:
        await ep.aclose()
    choice = body["choices"][0]
    assert status == 200 and choice["finish_reason"] == "length"
    assert len(choice["token_ids"]) == 7 and len(choice["logprobs"]["content"]) == 7
    assert ep.stats().truncated == 1


async def test_max_tokens_is_clamped_to_the_room_left_or_rejected_in_strict_mode(tok):
    engine = ScriptedEngine(tok, lambda p: "ok")
    n_prompt = len(tok(tok.apply_chat_template(USER, add_generation_prompt=True, tokenize=False),
                       add_special_tokens=False)["input_ids"])
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=n_prompt + 30)
    url = await ep.start()
    try:
        status, _ = await post(url, chat(USER, max_tokens=1000))
        assert status == 200 and engine.calls[-1][1].max_tokens == 30
        status, _ = await post(url, chat(USER))  # no max_tokens: all the room left
        assert status == 200 and engine.calls[-1][1].max_tokens == 30
    finally:
        await ep.aclose()
    strict = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=n_prompt + 30,
                          strict_max_tokens=True)
    url = await strict.start()
    try:
        status, body = await post(url, chat(USER, max_tokens=1000))
    finally:
        await strict.aclose()
    assert status == 400 and body["error"]["message"].startswith(
        f"max_tokens=1000 cannot be greater than max_model_len=max_total_tokens={n_prompt + 30}.")
    strict = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=n_prompt + 30,
                          strict_max_tokens=True)
    url = await strict.start()
    try:
        status, body = await post(url, chat(USER, max_tokens=31))
    finally:
        await strict.aclose()
    assert status == 400 and body["error"]["param"] == "input_tokens" and body["error"]["message"].startswith(
        f"This model's maximum context length is {n_prompt + 30} tokens. However, you requested 31 output tokens "
        f"and your prompt contains at least {n_prompt} input tokens")


async def test_rollout_max_new_tokens_caps_every_call(tok):
    engine = ScriptedEngine(tok, lambda p: "ok")
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(max_tokens=12), max_length=4096)
    url = await ep.start()
    try:
        await post(url, chat(USER, max_tokens=100))
    finally:
        await ep.aclose()
    assert engine.calls[0][1].max_tokens == 12


async def test_prompt_longer_than_the_context_is_a_vllm_style_400(tok):
    engine = ScriptedEngine(tok, lambda p: "never")
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=40)
    url = await ep.start()
    try:
        status, body = await post(url, chat(USER + [{"role": "user", "content": "more words " * 50}]))
        llm = ChatVLLM(base_url=url, model="policy", max_retries=0)
        with pytest.raises(ContextOverflowError, match="maximum context length is 40 tokens"):
            await llm.ainvoke([("human", "more words " * 50)])
        await llm.aclose()
    finally:
        await ep.aclose()
    assert status == 400
    assert body["error"]["type"] == "BadRequestError" and body["error"]["code"] == 400
    assert body["error"]["message"].startswith("This model's maximum context length is 40 tokens. However, you "
                                               "requested 0 output tokens and your prompt contains at least 41 "
                                               "input tokens")
    assert engine.calls == [] and ep.stats().context_rejections == 2


async def test_history_with_tool_calls_renders_like_the_template(tok):
    """A second turn as ChatVLLM sends it: arguments as a JSON string, reasoning kept, tool results."""
    engine = ScriptedEngine(tok, lambda p: "done")
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=4096)
    history = USER + [
        {"role": "assistant", "content": "", "reasoning_content": "search it",
         "tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "search", "arguments": '{"queries": [{"query": "x"}]}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "# Search query: x\n# Result:\nnothing"},
    ]
    url = await ep.start()
    try:
        status, body = await post(url, chat(history, tools=[SEARCH_TOOL]))
    finally:
        await ep.aclose()
    assert status == 200
    as_dicts = json.loads(json.dumps(history))
    as_dicts[2]["tool_calls"][0]["function"]["arguments"] = {"queries": [{"query": "x"}]}
    text = tok.apply_chat_template(as_dicts, tools=[SEARCH_TOOL], add_generation_prompt=True, tokenize=False)
    assert body["prompt_token_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    prompt = tok.decode(body["prompt_token_ids"])
    assert "<think>\nsearch it\n</think>" in prompt
    assert '<tool_call>\n{"name": "search", "arguments": {"queries": [{"query": "x"}]}}\n</tool_call>' in prompt
    assert "<tool_response>\n# Search query: x" in prompt


async def test_chat_template_kwargs_are_passed_to_the_template(tok):
    engine = ScriptedEngine(tok, lambda p: "fine")
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=4096)
    url = await ep.start()
    try:
        await post(url, chat(USER, chat_template_kwargs={"enable_thinking": False}))
    finally:
        await ep.aclose()
    assert tok.decode(engine.calls[0][0]).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


async def test_rollouts_keyed_by_path_or_body_have_their_own_engine_context_and_stats(tok):
    e1 = ScriptedEngine(tok, lambda p: model_text("one", reasoning="r"))
    e2 = ScriptedEngine(tok, lambda p: "two two")
    ep = ChatEndpoint(tok)
    await ep.start()
    try:
        u1 = ep.open_rollout("r1", engine=e1, sampling_params=base_params(temperature=0.6), max_length=4096)
        ep.open_rollout("r2", engine=e2, sampling_params=base_params(), max_length=30)
        assert u1.endswith("/r/r1/v1")
        s1, b1 = await post(u1, chat(USER))
        s2, b2 = await post(ep.base_url, chat(USER, wideseek_rollout="r2"))
        s3, b3 = await post(ep.base_url, chat(USER, wideseek_rollout="nope"))
        s4, b4 = await post(ep.base_url, chat(USER))  # no key and no default rollout
        st1 = ep.close_rollout("r1")
        s5, _ = await post(u1, chat(USER))
    finally:
        await ep.aclose()
    assert s1 == 200 and b1["choices"][0]["message"]["content"] == "\n\none"
    assert e1.calls[0][1].temperature == 0.6
    assert s2 == 400 and "maximum context length is 30" in b2["error"]["message"]
    assert s3 == 404 and "no open rollout 'nope'" in b3["error"]["message"]
    assert s4 == 404 and s5 == 404
    assert st1.calls == 1 and st1.completion_tokens == len(b1["choices"][0]["token_ids"])
    assert e2.calls == []


@pytest.mark.parametrize(("body", "message"), [
    ({"messages": [{"role": "user", "content": "q"}], "n": 2}, "only n=1"),
    ({"messages": [{"role": "user", "content": "q"}], "stream": True}, "streaming is not supported"),
    ({"messages": []}, "non-empty"),
    ({"messages": [{"content": "no role"}]}, "string 'role'"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "content part"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "chat template failed"),
    ({"messages": "hello"}, "invalid request"),
    ({"messages": [{"role": "user", "content": "q"}], "max_tokens": 0}, "at least 1"),
])
async def test_bad_requests_get_clear_400s(tok, body, message):
    engine = ScriptedEngine(tok, lambda p: "x")
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=4096)
    url = await ep.start()
    try:
        status, out = await post(url, body)
    finally:
        await ep.aclose()
    assert status == 400, out
    assert message in out["error"]["message"]
    assert engine.calls == []


async def test_engine_failure_is_a_500_with_the_reason(tok):
    def boom(prompt: str) -> str:
        raise RuntimeError("CUDA out of memory (simulated)")

    ep = ChatEndpoint(tok, engine=ScriptedEngine(tok, boom), sampling_params=base_params(), max_length=4096)
    url = await ep.start()
    try:
        status, body = await post(url, chat(USER))
    finally:
        await ep.aclose()
    assert status == 500 and "CUDA out of memory" in body["error"]["message"]
    assert ep.stats().errors == 1


async def test_chatvllm_against_the_endpoint_keeps_ids_logprobs_and_reasoning(tok):
    raw = model_text(reasoning="think", tool_calls=[("access", {"urls": [{"url": "https://a.example/x",
                                                                          "info_to_extract": "year"}]})])
    engine = ScriptedEngine(tok, lambda p: raw)
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=4096)
    url = await ep.start()
    try:
        llm = ChatVLLM(base_url=url, model="policy", max_retries=0)
        ai = await llm.bind_tools([ACCESS_TOOL]).ainvoke([("system", "sys"), ("human", "q")], max_tokens=300)
        await llm.aclose()
    finally:
        await ep.aclose()
    md = ai.response_metadata
    assert ai.additional_kwargs["reasoning_content"] == "\nthink\n"
    assert ai.tool_calls[0]["name"] == "access"
    assert ai.tool_calls[0]["args"] == {"urls": [{"url": "https://a.example/x", "info_to_extract": "year"}]}
    assert md["prompt_token_ids"] == engine.calls[0][0]
    assert len(md["token_ids"]) == len(md["logprobs"]) > 5
    assert md["finish_reason"] == "tool_calls"


async def test_models_route(tok):
    ep = ChatEndpoint(tok, model_name="my-policy")
    url = await ep.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/models") as r:
                body = await r.json()
    finally:
        await ep.aclose()
    assert body["data"][0]["id"] == "my-policy"


def test_the_committed_tokenizer_is_what_the_script_generates(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_tokenizer", ASSETS / "make_tokenizer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(tmp_path / "tok")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (out / name).read_text() == (ASSETS / "tiny-qwen3" / name).read_text(), name


async def test_stop_string_ends_the_generation_like_vllms_engine(tok):
    """The scripted engine stops at the token completing a stop string (stop_reason: the string), and the
    endpoint answers as vLLM does: text before the string, token ids up to that token, stop_reason passed on."""
    engine = ScriptedEngine(tok, lambda p: model_text("alpha STOP beta gamma", reasoning="r"))
    ep = ChatEndpoint(tok, engine=engine, sampling_params=base_params(), max_length=4096)
    url = await ep.start()
    try:
        status, body = await post(url, chat(USER, stop=["STOP"]))
    finally:
        await ep.aclose()
    choice = body["choices"][0]
    assert status == 200 and choice["finish_reason"] == "stop" and choice["stop_reason"] == "STOP"
    assert choice["message"]["content"] == "\n\nalpha "
    assert tok.decode(choice["token_ids"]).endswith("STOP") and "beta" not in tok.decode(choice["token_ids"])
